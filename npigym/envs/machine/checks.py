"""Checks of environment constructor knobs, with one message shape for every task.

Every bad knob raises a ``ValueError`` that names the argument: a value out of range, a minimum
above its maximum, and a size whose step limit would not fit the machine's int32 step counter
(past it the limit wraps and episodes end after one step with no word). A knob of the wrong type
(a float ``2.5``, a bool, a string) raises :class:`KnobTypeError`, which is both a ``TypeError``
(what Python raises for a wrong type) and a ``ValueError`` (so ``except ValueError`` catches every
rejected knob value, as numpy's ``AxisError`` is both a ``ValueError`` and an ``IndexError``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

# The largest step count, step limit or time limit: the machine counts steps in int32.
INT32_MAX = int(np.iinfo(np.int32).max)


class KnobTypeError(TypeError, ValueError):
    """A constructor knob of the wrong type (a ``TypeError`` and a ``ValueError``)."""


def is_int(value: Any) -> bool:
    """``value`` is a Python or numpy integer, and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, low: int = 1, high: Optional[int] = None,
              why: str = "") -> int:
    """``value`` as an int in ``[low, high]`` (``high`` None: no upper bound).

    Raises:
        KnobTypeError: ``value`` is not an int (a bool, a float, a string, ...).
        ValueError: out of range; ``why`` (e.g. "(the step limit must fit int32)") explains the
            upper bound.
    """
    if not is_int(value):
        raise KnobTypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    if value < low or (high is not None and value > high):
        bound = f"in [{low:,}, {high:,}]" if high is not None else f">= {low:,}"
        why = f" {why}" if why else ""
        raise ValueError(f"{name} must be {bound}{why}, not {int(value):,}")
    return int(value)


def check_min_max(min_name: str, min_value: int, max_name: str, max_value: int) -> None:
    """``min_value <= max_value``, or a ValueError naming both knobs."""
    if min_value > max_value:
        raise ValueError(f"{min_name} ({min_value:,}) must not exceed {max_name} "
                         f"({max_value:,})")


def check_step_limit(names: str, worst_case_limit: int, what: str) -> None:
    """The default step limit of the largest instance, ``worst_case_limit`` (computed in Python
    ints from the size knobs ``names``), fits the int32 step counter.

    Args:
        names: the knobs that set it, e.g. ``"max_digits and max_multiplier_digits"``.
        worst_case_limit: the step limit of the largest instance, as an exact Python int.
        what: the largest instance in words, e.g. ``"a 3,000 x 3,000-digit product"``.
    """
    if worst_case_limit > INT32_MAX:
        raise ValueError(
            f"{names} too large: the step limit of {what} would be {worst_case_limit:,} steps, "
            f"past int32's {INT32_MAX:,} (the machine counts steps in int32); use smaller "
            "sizes")


def check_time_limit(time_limit: Any) -> Optional[int]:
    """``time_limit``: None or an int in ``[1, 2**31 - 1]`` (the step counter is int32; a
    larger limit would wrap, a numpy one silently)."""
    if time_limit is None:
        return None
    if not is_int(time_limit) or time_limit < 1:
        raise ValueError(f"time_limit must be a positive int or None, not {time_limit!r}")
    if time_limit > INT32_MAX:
        raise ValueError(f"time_limit must be at most {INT32_MAX:,} (the machine counts steps "
                         f"in int32), not {int(time_limit):,}")
    return int(time_limit)
