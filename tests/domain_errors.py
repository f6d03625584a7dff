"""Every domain error class there is: each module of `registry` and `api` imported, then the subclasses
of `RegistryError` walked, so that a test over them cannot miss one defined in a module nobody imported."""

from __future__ import annotations

import importlib
import pkgutil

import api
import registry
from registry.errors import RegistryError

_SKIP = ("__main__",)  # `python -m registry.cli` would run the command line


def every_error() -> list[type[RegistryError]]:
    for package in (registry, api):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not info.name.endswith(_SKIP):
                importlib.import_module(info.name)

    def below(cls: type[RegistryError]) -> list[type[RegistryError]]:
        return [cls] + [e for sub in cls.__subclasses__() for e in below(sub)]

    return below(RegistryError)[1:]  # the base itself is never raised
