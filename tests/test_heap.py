"""The app's start-up objects are frozen out of the garbage collector's walks (api/heap.py), once the app has
started, in a process of its own as a served worker is."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STARTED = textwrap.dedent("""
    import gc, json, weakref
    from fastapi.testclient import TestClient
    from api.app import create_app
    from registry.config import Settings

    class Garbage:
        pass

    app = create_app(Settings(database_url="postgresql://unused/unused", scheduler_enabled=False,
                              certificate_workers=0, report_workers=0))
    cycle = Garbage()
    cycle.me = cycle  # only the collector can free it
    freed = []
    weakref.finalize(cycle, freed.append, True)
    del cycle
    gc.disable()  # no collection of our own before start-up's
    before = gc.get_freeze_count()
    with TestClient(app):
        started = gc.get_freeze_count()
    print(json.dumps({"before": before, "started": started, "freed": bool(freed)}))
""")


def test_starting_the_app_freezes_what_start_up_made_and_collects_its_garbage_first() -> None:
    out = subprocess.run(
        [sys.executable, "-c", STARTED], cwd=ROOT, capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] == 0
    assert seen["started"] > 50_000  # the framework's, the ORM's and the app's objects
    assert seen["freed"]  # start-up's garbage was collected, not frozen with the rest
