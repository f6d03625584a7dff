"""A refusal as a person reads it, in the console's language, from the same domain error the API answers
with (its fixed `message`, filled from its context): never the API's English `detail`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.console.i18n import ZH
from registry.errors import RegistryError


class _Filled(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "—"


def describe(refused: RegistryError, t: Callable[[str], str]) -> str:
    """A fixed text the console itself raised (it has its translation) as it is; otherwise the error's
    message, translated, with its figures (and the words among them, e.g. a status) filled in."""
    if refused.detail in ZH:
        return t(refused.detail)
    values = _Filled({k: t(v) if isinstance(v, str) else v for k, v in refused.context.items()})
    return t(refused.message).format_map(values)
