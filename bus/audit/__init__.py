"""The tamper-evident audit log: a hash chain over every hop and event, checked and exported.

``chain`` holds the hashing shared by everything below; ``walk`` checks a chain record by record;
``verify`` walks the stored chain; ``evidence`` builds and checks one dossier's export, and
``export`` reads it out of the store. Records are written by :mod:`bus.store.audit`.
"""
