"""The store: current dossier state, the transaction log, the outbox and the dedup record."""
