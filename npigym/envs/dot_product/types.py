"""Types of the dot-product task's state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import chex

if TYPE_CHECKING:  # pragma: no cover
    from dataclasses import dataclass
else:
    from chex import dataclass


@dataclass
class DotPad:
    """The dot-product task's part of the machine state.

    Attributes:
        x, y: (max_pairs, width) int8, the vectors' numbers as pad rows (Addition's encoding).
        len_x, len_y: (max_pairs,) int32, their digits.
        num_pairs: () int32, the vectors' length k.
        pair: () int32, the pair being multiplied.
        work: (3, width) int8, the rows ACC (the running sum of products), CARRY and OUT.
        add_pointers, b_pointer, reps, ink: the multiplication's pointers and counters, as in
            ``MulPad``.
    """

    x: chex.Array
    y: chex.Array
    len_x: chex.Array
    len_y: chex.Array
    num_pairs: chex.Array
    pair: chex.Array
    work: chex.Array
    add_pointers: chex.Array
    b_pointer: chex.Array
    reps: chex.Array
    ink: chex.Array


class Snapshot(NamedTuple):
    """``acc``: (2,) uint32, ACC's residues at call time (DOT's postcondition); ``mul``: the
    Multiplication view's snapshot (its programs' postconditions)."""

    acc: chex.Array
    mul: Any


class FullView(NamedTuple):
    """The vectors, the work rows and the pointers (``observation="full"``)."""

    x: chex.Array
    y: chex.Array
    work: chex.Array
    pair: chex.Array
    add_pointers: chex.Array
    b_pointer: chex.Array
