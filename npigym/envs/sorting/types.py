"""Types of the sorting task's state."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import chex

if TYPE_CHECKING:  # pragma: no cover
    from dataclasses import dataclass
else:
    from chex import dataclass


@dataclass
class SortPad:
    """The sorting task's part of the machine state: one row sorted in place, three pointers.

    Attributes:
        cells: (max_length,) int8 (int16 / int32 for larger alphabets); ``v + 1`` for value
            ``v`` in the first ``length`` cells, 0 (blank) beyond.
        pointers: (3,) int32, the cell under pointers 1, 2 and 3, always in ``[0, length)``.
        length: () int32, the instance's length.
        fingerprint: () uint32, an order-independent hash of the cells drawn at generation
            (``task.fingerprint``); the sort's postcondition checks the array is still a
            permutation of the original with it.
        inversions_removed: () int32, inversions removed since the reset; tracked by SWAP only
            with the dense reward (0 otherwise).
    """

    cells: chex.Array
    pointers: chex.Array
    length: chex.Array
    fingerprint: chex.Array
    inversions_removed: chex.Array


class Snapshot(NamedTuple):
    """What the postconditions (and the shift experts) need of the state at call time."""

    pointers: chex.Array  # (3,) int32
    cells: chex.Array  # (2,) int32, the cells under pointers 1 and 2


class FullView(NamedTuple):
    """The whole array (``observation="full"``)."""

    cells: chex.Array  # (max_length,) cells, 0 blank, v + 1 for value v
    length: chex.Array  # () int32
    pointers: chex.Array  # (3,) int32
