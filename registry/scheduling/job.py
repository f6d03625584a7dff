"""What a scheduled job is to the scheduler: work done in one unit of work as the system, returning how
many items it handled (counted in the metrics). Each domain package keeps its jobs in its `jobs.py`;
registry/scheduler.py keeps only the guards and the list of what runs when."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from sqlmodel import Session

from registry.principal import Actor

Job: TypeAlias = Callable[[Session, Actor], int]
