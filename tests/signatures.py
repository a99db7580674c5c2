"""Fakes bound to the real signature: a call the real function would reject fails the test."""

from __future__ import annotations

import functools
import inspect


def bound_to(real, fake):
    """`fake`, refusing (TypeError) any call that does not bind to `real`'s signature."""
    signature = inspect.signature(real)

    @functools.wraps(fake)
    def checked(*args, **kwargs):
        signature.bind(*args, **kwargs)
        return fake(*args, **kwargs)

    return checked
