"""Backends and engines chosen by a config field: a registry of ``"module:Class"`` strings,
imported only when chosen, with errors that name the choices or the extra to install."""

from __future__ import annotations

import importlib
from typing import Any


def resolve(registry: dict[str, str], name: str, what: str, error: type[Exception]) -> type:
    """The class ``registry[name]`` names, imported, not instantiated."""
    if name not in registry:
        raise error(f"unknown {what} {name!r}; choose one of {sorted(registry)}")
    module, cls = registry[name].split(":")
    return getattr(importlib.import_module(module), cls)


def create(registry: dict[str, str], name: str, what: str, extras: dict[str, str], error: type[Exception],
           *args: Any) -> Any:
    """Import and instantiate ``registry[name](*args)``; a missing package, whether imported by the
    module or by the constructor, is reported with the extra that provides it."""
    try:
        return resolve(registry, name, what, error)(*args)
    except ImportError as exc:
        raise error(f"{what} {name!r} needs a package that is not installed ({exc.name}); "
                    f"install it with: pip install 'paddleocr-vl-serve[{extras[name]}]'") from None
