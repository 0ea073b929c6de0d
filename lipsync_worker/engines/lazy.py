"""Lazy package exports: an engine package's names are imported on first use, so that
its `weights` module (path checks only) can be imported without torch."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """A module `__getattr__` resolving `name` from the submodule `exports[name]`."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(exports[name], package), name)
        raise AttributeError(name)

    return __getattr__
