"""The garbage collector and what a process's start-up made.

By the time the app serves, a process holds ~150,000 objects that live as long as it does: modules, the
ORM's mappers and compiled statements, FastAPI's routes, pydantic's validators; a PDF worker, after its
first document, WeasyPrint's modules, fonts and the styles kept from one certificate to the next. CPython's
full collection walks every one of them each time, and a busy process makes many: under the benches' load
a request worker made 10–17 a run, each pausing every request of that process for up to 300–400 ms, and a
renderer as many (docs/benchmarks.md, stop 28). Frozen once they exist (`gc.freeze`), those objects are left
out of every collection; what requests and documents make is collected as before."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Once a process, when its start-up is over (the app has started; a worker has done its first task):
    collect what start-up left over, then freeze the rest (a later app in the same process, as in the
    tests, finds them frozen already). Returns how many are."""
    if gc.get_freeze_count() == 0:
        gc.collect()  # garbage frozen would never be collected
        gc.freeze()
    return gc.get_freeze_count()
