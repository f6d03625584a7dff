"""One mapping from a domain error to what the caller sees, for the API and the console alike."""

from __future__ import annotations

from api.problems import STATUS_BY_CODE
from tests.domain_errors import every_error


def test_every_domain_error_has_its_status() -> None:
    known = every_error()
    assert len(known) >= 15, [e.__name__ for e in known]
    unmapped = sorted(
        {f"{e.__module__}.{e.__name__}: {e.code}" for e in known if e.code not in STATUS_BY_CODE}
    )
    assert unmapped == []
    # A refusal is the caller's to fix or to retry: never a 5xx but for "busy, retry" (503 with Retry-After).
    assert {c: s for c, s in STATUS_BY_CODE.items() if not 400 <= s < 500} == {"busy": 503}


def test_every_mapped_code_is_raised_by_something() -> None:
    raised = {e.code for e in every_error()}
    # validation_error also comes from request parsing; the rest only from domain errors.
    assert set(STATUS_BY_CODE) - raised == set()
