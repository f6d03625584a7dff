"""The certificates' scheduled work: rendering what a crash left without a PDF."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from registry.certificate.service import GIVE_UP_AFTER, Render, render_pending


def sweep_job(
    engine: Engine, render: Render, now: Callable[[], datetime], grace: timedelta
) -> Callable[[], int]:
    """Certificates confirmed over `grace` ago whose rendering after confirmation did not happen."""

    def run() -> int:
        return render_pending(engine, render, now, issued_before=now() - grace, give_up_after=GIVE_UP_AFTER)

    return run
