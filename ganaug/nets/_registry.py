"""The architecture table; kept apart so builders can register without import cycles."""
from __future__ import annotations

from typing import Callable

ARCHS: dict[str, Callable] = {}


def register(name: str):
    """Decorator: ``@register("mlp")`` on a builder ``(image_shape, num_classes, **opts)``."""
    def deco(fn: Callable) -> Callable:
        if name in ARCHS:
            raise ValueError(f"architecture {name!r} is registered twice")
        ARCHS[name] = fn
        return fn
    return deco
