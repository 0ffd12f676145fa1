"""Types of the multiplication task's state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import chex

if TYPE_CHECKING:  # pragma: no cover
    from dataclasses import dataclass
else:
    from chex import dataclass


@dataclass
class MulPad:
    """The multiplication task's part of the machine state.

    Attributes:
        pad: (5, width) int8, rows A, B, ACC, CARRY, OUT; 0 blank, d + 1 for digit d, 11 edge.
        add_pointers: (4,) int32, the pointers of the Addition view (ACC, the shifted
            multiplicand, CARRY, OUT): what ADD's programs move.
        b_pointer: () int32, the column of the multiplier digit being worked on.
        reps: () int32, additions committed for that digit.
        ink: () uint32, the Addition view's write fingerprint (``addition.task.wrote_only``).
        len_a, len_b: () int32, digits of the multiplicand and the multiplier.
    """

    pad: chex.Array
    add_pointers: chex.Array
    b_pointer: chex.Array
    reps: chex.Array
    ink: chex.Array
    len_a: chex.Array
    len_b: chex.Array


class Snapshot(NamedTuple):
    """What the postconditions need of the state at call time.

    Attributes:
        acc: (2,) uint32, ACC's value modulo ``constants.PRIMES`` (MUL's postcondition).
        add: the Addition view's snapshot (ADD's programs' postconditions).
    """

    acc: chex.Array
    add: Any


class FullView(NamedTuple):
    """The whole pad and the pointers (``observation="full"``)."""

    pad: chex.Array  # (5, width) int8
    add_pointers: chex.Array  # (4,) int32
    b_pointer: chex.Array  # () int32
