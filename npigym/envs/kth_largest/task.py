"""KthLargest-v0's task functions: Sorting's, plus the rows of KJMP and KTH and the target view.

Sorting's functions apply to a :class:`KthPad` as they are (it is a ``SortPad``): primitives,
snapshot and the dense reward's progress come from :mod:`npigym.envs.sorting.task` unchanged,
and the expert and postconditions below defer to Sorting's for Sorting's program ids (a prefix
of this library). All pure functions of one (unbatched) pad, O(1) or O(length) elementwise.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

from npigym.envs.kth_largest import constants as c
from npigym.envs.kth_largest.types import FullView, KthPad
from npigym.envs.machine.types import Frame
from npigym.envs.sorting import constants as sc
from npigym.envs.sorting import task as sorting_task
from npigym.envs.sorting.types import SortPad


def target(pad: KthPad) -> chex.Array:
    """() int32, the cell ``length - k``: where a sorted array holds its k-th largest value."""
    return pad.length - pad.k


def target_sides(pad: KthPad) -> chex.Array:
    """(2,) int32, where pointers 1 and 2 are relative to :func:`target`: ``LEFT_OF_TARGET``
    (0), ``ON_TARGET`` (1) or ``RIGHT_OF_TARGET`` (2)."""
    return jnp.sign(pad.pointers[: sc.P3] - target(pad)).astype(jnp.int32) + 1


def local_view(pad: KthPad) -> chex.Array:
    """(10,) int32: Sorting's 8 features (the values under pointers 1 and 2, ``at_start,
    at_end`` of pointers 1, 2 and 3), then :func:`target_sides` of pointers 1 and 2.

    The side is what KJMP needs to know which way to shift and when to stop; like the edge
    flags it is a function of the frame's pointers alone, not of the length or k, so a
    policy that learned it on short arrays applies to any length.
    """
    return jnp.concatenate([sorting_task.local_view(pad), target_sides(pad)])


def _call(program, a0=0, a1=0) -> chex.Array:
    return jnp.stack([jnp.asarray(program), jnp.asarray(a0), jnp.asarray(a1),
                      jnp.asarray(0)]).astype(jnp.int32)


def expert_call(pad: KthPad, frame: Frame) -> chex.Array:
    """Sorting's trace for Sorting's programs, and:

    - KTH: ``BUBBLESORT``, ``KJMP``, RETURN.
    - KJMP: with pointers 1 and 2 on one cell, RSHIFT (left of the target) or LSHIFT (right
      of it) until they are on the target, then RETURN. With the pointers apart (which
      Sorting's trace never leaves, but a learned BUBBLESORT may) LSHIFT first: the shifts
      move both pointers, so they meet on the first cell and go on together.

    Every plan terminates from any state, as Sorting's, so it is safe as a builtin.
    """
    p, t = pad.pointers, target(pad)
    ret = _call(sc.RETURN)
    together = p[sc.P1] == p[sc.P2]
    kjmp = jnp.where(together & (p[sc.P1] == t), ret,
                     jnp.where(together & (p[sc.P1] < t), _call(sc.RSHIFT), _call(sc.LSHIFT)))
    k = frame.steps
    kth = jnp.where(k == 0, _call(sc.BUBBLESORT), jnp.where(k == 1, _call(c.KJMP), ret))
    own = jnp.stack([kjmp, kth])[jnp.clip(frame.program - c.KJMP, 0, 1)]
    return jnp.where(frame.program < c.KJMP, sorting_task.expert_call(pad, frame), own)


def holds_kth_largest(pad: KthPad, cell: chex.Array) -> chex.Array:
    """Whether ``cell`` holds the array's k-th largest value, duplicates counted: fewer than
    ``k`` values are larger and at least ``k`` are at least as large. Two sums, no sort
    (blank cells hold 0, below every value)."""
    a = pad.cells.astype(jnp.int32)
    v = a[cell]
    larger = jnp.sum(a > v)
    at_least = jnp.sum(a >= v)
    return (larger < pad.k) & (pad.k <= at_least)


def postcondition(pad: KthPad, frame: Frame) -> chex.Array:
    """Sorting's postconditions for Sorting's programs, and:

    - KJMP: pointers 1 and 2 on cell ``length - k``, pointer 3 unchanged (KJMP calls the
      shifts only, which cannot write the array).
    - KTH: pointers 1 and 2 on cell ``length - k``, which holds the k-th largest value
      (:func:`holds_kth_largest`), and the array is a permutation of the original. Like
      MAX's, it asks for the place a sort puts the value, not for a sorted array.
    """
    snap = frame.snapshot
    p, t = pad.pointers, target(pad)
    on_target = (p[sc.P1] == t) & (p[sc.P2] == t)
    kjmp = on_target & (p[sc.P3] == snap.pointers[sc.P3])
    kth = on_target & holds_kth_largest(pad, t) & sorting_task.is_permutation(pad)
    own = jnp.stack([kjmp, kth])[jnp.clip(frame.program - c.KJMP, 0, 1)]
    sorting = sorting_task.postcondition(pad, frame, sc.NUM_SORTING_PROGRAMS)
    return jnp.where(frame.program < c.KJMP, sorting, own)


def full_view(pad: KthPad) -> FullView:
    return FullView(cells=pad.cells, length=pad.length, pointers=pad.pointers, k=pad.k)


def kjmp_steps(length: chex.Array, k: chex.Array) -> chex.Array:
    """Agent steps KTH adds to BUBBLESORT's in the hierarchical posing: calling BUBBLESORT,
    calling KJMP, its ``length - k`` RSHIFTs of 4 steps each (the call, two MOVE_PTRs, the
    RETURN) and its RETURN, and KTH's RETURN: ``4 (length - k) + 4``."""
    return 4 * jnp.maximum(jnp.asarray(length, jnp.int32) - jnp.asarray(k, jnp.int32), 0) + 4


def default_step_limit(pad: KthPad) -> chex.Array:
    """Twice the expert's worst case for this instance's length and k (a reversed array)."""
    n = pad.length
    return 2 * (sorting_task.expert_steps(n, n * (n - 1) // 2) + kjmp_steps(n, pad.k))


def project(pad: KthPad) -> SortPad:
    """The Sorting task state a skill bound to a sorting program sees: the pad without k."""
    return SortPad(cells=pad.cells, pointers=pad.pointers, length=pad.length,
                   fingerprint=pad.fingerprint, inversions_removed=pad.inversions_removed)


def embed(pad: KthPad, sorted_pad: SortPad) -> KthPad:
    """``pad`` after a skill's call: every Sorting field from ``sorted_pad``, k kept."""
    return pad.replace(cells=sorted_pad.cells, pointers=sorted_pad.pointers,
                       length=sorted_pad.length, fingerprint=sorted_pad.fingerprint,
                       inversions_removed=sorted_pad.inversions_removed)
