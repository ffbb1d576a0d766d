"""Freezing a process's start-up objects: counted, and what is made later is still collected.

Run in a child interpreter: a freeze lasts as long as its process, and the test run's own
objects must stay collectable."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc
from bus.heap import freeze_startup_objects
import bus.api.app  # a process's worth of modules and objects

frozen = freeze_startup_objects("test")
assert frozen == gc.get_freeze_count() > 10_000, frozen

class Node:
    pass

gc.disable()  # so that only the collection below finds them
for _ in range(1000):  # cycles made after the freeze
    a, b = Node(), Node()
    a.other, b.other = b, a
del a, b
assert gc.collect() >= 2000
print(frozen)
"""


def test_startup_objects_are_frozen_and_later_cycles_still_collected() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 10_000
