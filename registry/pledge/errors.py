from __future__ import annotations

from registry.errors import InvalidState


class FourEyesRequired(InvalidState):
    """The operator who first reviewed a disposal cannot also be the one who confirms it."""

    def __init__(self, operator: str) -> None:
        super().__init__(
            f"four eyes: {operator} reviewed this disposal; another exchange operator must confirm it",
            reviewed_by=operator,
        )
