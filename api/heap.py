"""The garbage collector and what the app's start-up made.

By the time the app serves, a process holds ~150,000 objects that live as long as it does: modules, the
ORM's mappers and compiled statements, FastAPI's routes, pydantic's validators. CPython's full collection
walks every one of them each time, and the collections come more often as a busy process's young objects
age: under the benches' load a worker made 10–17 full collections a run, each pausing every request of that
process for up to 300–400 ms (docs/benchmarks.md, stop 28). Frozen once they exist
(`gc.freeze`), those objects are left out of every collection; what requests make is collected as before."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Once a process, after the app has started: collect what start-up left over, then freeze the rest (a
    later app in the same process, as in the tests, finds them frozen already)."""
    if gc.get_freeze_count() == 0:
        gc.collect()  # garbage frozen would never be collected
        gc.freeze()
