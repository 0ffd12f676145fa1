"""Types of the addition task's state."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import chex

if TYPE_CHECKING:  # pragma: no cover
    from dataclasses import dataclass
else:
    from chex import dataclass


@dataclass
class Scratchpad:
    """The addition task's part of the machine state.

    Attributes:
        pad: (4, width) int8, rows IN1, IN2, CARRY, OUT; 0 blank, d + 1 for digit d, 11 edge.
        pointers: (4,) int32, one column pointer per row.
        num_digits: () int32, digits of the longer operand (the instance's size).
        ink: () uint32, a fingerprint of every WRITE so far (0 at reset): the sum over written
            cells of ``cell_key(row, col) * (new - old)``, mod 2**32. It is linear in the pad,
            so it tells a program's postcondition in O(1) whether the program wrote anywhere
            besides the cells it may change (``task.wrote_only``).
    """

    pad: chex.Array
    pointers: chex.Array
    num_digits: chex.Array
    ink: chex.Array


class Snapshot(NamedTuple):
    """What the postconditions need of the state when a program was called."""

    pointers: chex.Array  # (4,) int32
    # () int32, the digits under the IN1, IN2 and CARRY pointers, summed: what ADD1 must write
    # (the only use of those cells, so the call stack carries one int per frame, not four).
    column_sum: chex.Array
    ink: chex.Array  # () uint32, the pad's fingerprint (Scratchpad.ink)
    # () int8 each: the cells ADD1 and CARRY may write (OUT under its pointer, CARRY left of
    # its pointer) as they were, to tell their writes from stray ones by the fingerprint.
    out_cell: chex.Array
    carry_cell: chex.Array


class FullView(NamedTuple):
    """The whole scratchpad (``observation="full"``)."""

    pad: chex.Array  # (4, width) int8
    pointers: chex.Array  # (4,) int32
