"""The base of every domain error. Each carries a stable `code` and its context, never an HTTP status:
`api/problems.py` is the one place that turns them into responses.

`detail` is for a program (English, with the figures); `message` is a fixed sentence for a person, its
`{placeholders}` filled from the context, which the console shows translated (api/console/i18n.py has
every message's Chinese: a test holds them together)."""

from __future__ import annotations

from typing import Any, ClassVar


class RegistryError(Exception):
    code: ClassVar[str] = "registry_error"
    title: ClassVar[str] = "Registry error"
    message: ClassVar[str] = "The request could not be completed."

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context


class NotFound(RegistryError):
    """Also what a principal gets for another tenant's resource: its existence is not disclosed."""

    code = "not_found"
    title = "Not found"
    message = "Not found."

    def __init__(self, kind: str, ident: object, *, field: str | None = None) -> None:
        context: dict[str, Any] = {"resource": kind, "id": str(ident)}
        if field:
            context["field"] = field
        super().__init__(f"{kind} {ident} not found", **context)


class Forbidden(RegistryError):
    code = "forbidden"
    title = "Forbidden"
    message = "You may not do this."


class InvalidInput(RegistryError):
    """A request that is well-formed but makes no sense; `field` names what is wrong."""

    code = "validation_error"
    title = "Invalid request"
    message = "This input is not valid: {field}."

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail, field=field)
        self.field = field


class InvalidState(RegistryError):
    code = "invalid_state"
    title = "Not allowed in the current state"
    message = "This is not allowed in the current state."


class AlreadyExists(RegistryError):
    code = "already_exists"
    title = "Already exists"
    message = "This already exists."


class Busy(RegistryError):
    """A lock could not be had in time; nothing was changed and the request may be retried."""

    code = "busy"
    title = "Busy, retry"
    message = "The registry is busy; try again in a moment."
