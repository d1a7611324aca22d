"""What counts as a number in a document read from outside (YAML, JSON, a saved state).

Python's bool is an int: `True` would pass as 1 everywhere a number is checked with
`isinstance` alone. Every reader of untrusted documents asks here instead.
"""

from __future__ import annotations

from typing import TypeGuard


def is_number(value: object) -> TypeGuard[int | float]:
    """An int or a float, never a bool (finite or not: callers say what they accept)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_integer(value: object) -> TypeGuard[int]:
    """An int, never a bool."""
    return isinstance(value, int) and not isinstance(value, bool)
