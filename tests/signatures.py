"""Fakes bound to the real signature: a call the real function would reject fails the test."""

from __future__ import annotations

import functools
import inspect


def bound_to(real, fake=None):
    """`fake`, refusing (TypeError) any call that does not bind to `real`'s signature; `@bound_to(real)` decorates."""
    if fake is None:
        return functools.partial(bound_to, real)
    signature = inspect.signature(real)

    @functools.wraps(fake)
    def checked(*args, **kwargs):
        signature.bind(*args, **kwargs)
        return fake(*args, **kwargs)

    return checked


def patch_bound(monkeypatch, owner, name: str, fake) -> None:
    """Replace `owner.name` (a class's method or a module's function) by `fake`, bound to the real signature."""
    monkeypatch.setattr(owner, name, bound_to(getattr(owner, name), fake))
