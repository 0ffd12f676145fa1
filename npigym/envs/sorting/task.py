"""The sorting task's functions: primitives, expert, postconditions, views.

All are pure functions of one (unbatched) pad; the machine vmaps them. Everything that runs at
every step is O(1) or O(length) elementwise work with plain reductions (no cumulative ops,
which lower to slow reduce-windows on XLA:CPU).
"""

from __future__ import annotations

from typing import Tuple

import chex
import jax
import jax.numpy as jnp

from npigym.envs.machine.types import Frame
from npigym.envs.sorting import constants as c
from npigym.envs.sorting.generator import fingerprint
from npigym.envs.sorting.types import FullView, Snapshot, SortPad


def cells_under_pointers(pad: SortPad) -> chex.Array:
    """(2,) int32: the cells under pointers 1 and 2 (``v + 1`` for value ``v``)."""
    return pad.cells[pad.pointers[: c.P3]].astype(jnp.int32)


def edge_flags(pad: SortPad) -> Tuple[chex.Array, chex.Array]:
    """(3,) bool each: whether each pointer is on the array's first / last cell."""
    return pad.pointers == 0, pad.pointers == pad.length - 1


def local_view(pad: SortPad) -> chex.Array:
    """(8,) int32, NPI's sorting encoder input: the values under pointers 1 and 2, then
    ``at_start, at_end`` for pointers 1, 2 and 3."""
    at_start, at_end = edge_flags(pad)
    values = jnp.maximum(cells_under_pointers(pad) - 1, 0)
    flags = jnp.stack([at_start, at_end], axis=-1).reshape(-1).astype(jnp.int32)
    return jnp.concatenate([values, flags])


def swap_inversion_change(cells: chex.Array, i: chex.Array, j: chex.Array) -> chex.Array:
    """How many inversions swapping cells ``i`` and ``j`` adds (negative: removes).

    Only the pair itself and the cells between them change their relation: for ``x`` at the
    left and ``y`` at the right, a cell ``z`` between gains ``[y > z] + [z > x]`` and loses
    ``[x > z] + [z > y]``. For adjacent cells that is just ``sign(y - x)``. O(length) masked
    elementwise work and a sum, whatever the distance.
    """
    lo, hi = jnp.minimum(i, j), jnp.maximum(i, j)
    a = cells.astype(jnp.int32)
    x, y = a[lo], a[hi]
    k = jnp.arange(a.shape[0])
    between = (k > lo) & (k < hi)
    gain = (y > a).astype(jnp.int32) + (a > x) - (x > a) - (a > y)
    pair = (y > x).astype(jnp.int32) - (x > y)
    return pair + jnp.sum(jnp.where(between, gain, 0))


def apply_primitive(pad: SortPad, program: chex.Array, args: chex.Array,
                    track_inversions: bool = False) -> Tuple[SortPad, chex.Array]:
    """MOVE_PTR(ptr, dir) or SWAP. Invalid: a move off the array (no wrap-around), a SWAP with
    pointers 1 and 2 on the same cell (it would change nothing), and moving pointer 3, the
    pass counter, right onto a cell ``k`` while the last ``k`` cells are not settled (see
    :func:`settled_suffix`).

    The last rule makes pointer 3 an honest count of the passes: after ``k`` bubble passes at
    least ``k`` cells are settled, so the expert's ``PTR 3 RIGHT`` after each RESET is always
    valid, while an agent cannot advance the counter without the passes. Without it, an agent
    learning BUBBLESORT from reward found a fixed schedule (one or two BUBBLEs, each followed by
    several ``PTR 3 RIGHT``) that sorts most arrays of the training lengths and fails on the
    rest: BUBBLESORT's postcondition (pointer 3 at the end) was met without the passes, and
    BUBBLE's (``p3 + 1`` cells settled) was made unreachable by a counter that ran ahead.
    O(length) elementwise work, like the dense reward's count.

    ``track_inversions`` (static) keeps ``inversions_removed`` up to date for the dense
    reward, an O(length) sum per step; without it SWAP is O(1) (the step is O(length) anyway,
    for pointer 3's check: about 25 % of Sorting's env step at 4,096 envs).
    """
    chex.assert_shape(args, (3,))
    pointers = pad.pointers
    # MOVE_PTR
    ptr = jnp.clip(args[0], 0, c.NUM_POINTERS - 1)
    target = pointers[ptr] + jnp.where(args[1] == c.LEFT, -1, 1)
    move_ok = (target >= 0) & (target < pad.length) & (args[1] >= c.LEFT) & (args[1] <= c.RIGHT)
    counter_ahead = (ptr == c.P3) & (args[1] == c.RIGHT) & ~settled_suffix(pad, target)
    move_ok &= ~counter_ahead
    is_move = program == c.MOVE_PTR
    moved = jnp.where(is_move & (jnp.arange(c.NUM_POINTERS) == ptr),
                      jnp.clip(target, 0, pad.length - 1), pointers)
    # SWAP: two single-cell writes that are the identity unless swapping. O(1) unbatched (the
    # expert's and builtins' loops), where a select would rewrite the whole row every call;
    # under vmap they measured as fast as the select.
    is_swap = program == c.SWAP
    i, j = pointers[c.P1], pointers[c.P2]
    x, y = pad.cells[i], pad.cells[j]
    cells = jax.lax.dynamic_update_index_in_dim(pad.cells, jnp.where(is_swap, y, x), i, 0)
    cells = jax.lax.dynamic_update_index_in_dim(cells, jnp.where(is_swap, x, y), j, 0)
    removed = pad.inversions_removed
    if track_inversions:
        removed = removed - jnp.where(is_swap, swap_inversion_change(pad.cells, i, j), 0)
    new = pad.replace(cells=cells, pointers=moved, inversions_removed=removed)
    ok = jnp.where(is_move, move_ok, is_swap & (i != j))
    return new, ok


def _shift_targets(pad: SortPad, snap: Snapshot, step: int) -> chex.Array:
    """(2,) where LSHIFT (``step=-1``) / RSHIFT (``+1``) leaves pointers 1 and 2: one cell
    from where they were at the call, or where they were if that is off the array."""
    return jnp.clip(snap.pointers[: c.P3] + step, 0, pad.length - 1)


def expert_call(pad: SortPad, frame: Frame) -> chex.Array:
    """NPI's bubble sort trace (Cai et al. 2017, Fig. 2), one call per frame step.

    - BUBBLESORT: ``BUBBLE, RESET, MOVE_PTR(P3, RIGHT)`` per pass, until pointer 3 is at the
      end (``length - 1`` passes).
    - BUBBLE: ``MOVE_PTR(P2, RIGHT)`` (when pointers 1 and 2 share a cell), then BSTEP until
      pointer 1 is at the end.
    - BSTEP: COMPSWAP, RSHIFT. COMPSWAP: SWAP if the left cell holds the larger value.
    - RESET: LSHIFT until pointers 1 and 2 are at the start.
    - LSHIFT / RSHIFT: move pointer 1, then pointer 2, one cell (each only if it can: on the
      last BSTEP pointer 2 is already at the end, so only pointer 1 moves and the pass ends
      with both on the last cell; RESET then brings both back in ``length - 1`` LSHIFTs).
    - RJMP: RSHIFT until pointers 1 and 2 are at the end. MAX: BUBBLESORT, RJMP.

    Every plan terminates from any state (each loop moves a pointer towards an edge), so the
    expert is safe to run as a builtin wherever the agent calls it.
    """
    snap: Snapshot = frame.snapshot
    at_start, at_end = edge_flags(pad)
    v = cells_under_pointers(pad)
    p = pad.pointers
    k = frame.steps

    def call(program, a0=0, a1=0):
        return jnp.stack([jnp.asarray(program), jnp.asarray(a0), jnp.asarray(a1),
                          jnp.asarray(0)]).astype(jnp.int32)

    ret = call(c.RETURN)
    phase = k % 3
    bubblesort = jnp.where(phase == 0, jnp.where(at_end[c.P3], ret, call(c.BUBBLE)),
                           jnp.where(phase == 1, call(c.RESET),
                                     call(c.MOVE_PTR, c.P3, c.RIGHT)))
    start_pass = (k == 0) & (p[c.P1] == p[c.P2]) & ~at_end[c.P2]
    bubble = jnp.where(start_pass, call(c.MOVE_PTR, c.P2, c.RIGHT),
                       jnp.where(at_end[c.P1], ret, call(c.BSTEP)))
    reset = jnp.where(at_start[c.P1] & at_start[c.P2], ret, call(c.LSHIFT))
    bstep = jnp.where(k == 0, call(c.COMPSWAP), jnp.where(k == 1, call(c.RSHIFT), ret))
    out_of_order = jnp.where(p[c.P1] < p[c.P2], v[0] > v[1], v[1] > v[0])
    compswap = jnp.where((k == 0) & out_of_order, call(c.SWAP), ret)

    def shift(step: int) -> chex.Array:
        target = _shift_targets(pad, snap, step)
        current = p[: c.P3]
        ptr = jnp.where(current[0] != target[0], c.P1, c.P2)
        direction = jnp.where(current[ptr] > target[ptr], c.LEFT, c.RIGHT)
        return jnp.where(jnp.all(current == target), ret, call(c.MOVE_PTR, ptr, direction))

    rjmp = jnp.where(at_end[c.P1] & at_end[c.P2], ret, call(c.RSHIFT))
    max_ = jnp.where(k == 0, call(c.BUBBLESORT), jnp.where(k == 1, call(c.RJMP), ret))
    # Rows indexed by program id; primitives and RETURN never own a frame.
    table = jnp.stack([ret, ret, ret, bubblesort, bubble, reset, bstep, compswap, shift(-1),
                       shift(+1), rjmp, max_])
    return table[frame.program]


def settled_suffix(pad: SortPad, count: chex.Array) -> chex.Array:
    """Whether the last ``count`` cells of the array hold its ``count`` largest values in
    ascending order (``count = length``: the array is sorted).

    After ``k`` bubble passes, ``k`` cells are settled; a pass settles one more (it carries the
    maximum of the unsettled prefix to its place). Elementwise compares and one max.
    """
    a = pad.cells.astype(jnp.int32)
    n = pad.length
    first = n - jnp.clip(count, 0, n)
    idx = jnp.arange(a.shape[0] - 1)
    in_order = (a[:-1] <= a[1:]) | (idx < first) | (idx >= n - 1)
    prefix_max = jnp.max(jnp.where(jnp.arange(a.shape[0]) < first, a, 0))
    boundary = a[jnp.clip(first, 0, a.shape[0] - 1)]
    return jnp.all(in_order) & ((first <= 0) | (first >= n) | (boundary >= prefix_max))


def is_permutation(pad: SortPad) -> chex.Array:
    """Whether the cells are (with probability 1 - 2**-32) a permutation of the generated ones.

    SWAP is the only primitive that writes the array, so this holds by construction here; the
    check keeps the sort's postcondition sound for libraries that add writing primitives.
    """
    return fingerprint(pad.cells) == pad.fingerprint


def postcondition(pad: SortPad, frame: Frame, num_programs: int = c.NUM_MAX_PROGRAMS
                  ) -> chex.Array:
    """Whether ``frame``'s program did its job, judged against its snapshot at call time.

    - BUBBLESORT: the array is sorted and a permutation of the original, and pointer 3 (the
      pass counter) is on the last cell, where NPI's trace returns. Without it, RETURN right
      after a pass that happened to sort the array would succeed, yet the local view there is
      the same as after any other pass: an agent learning from reward was pulled towards
      returning after its first pass.
    - BUBBLE: pointers 1 and 2 on the last cell, pointer 3 unchanged, and one more cell
      settled than the passes counted by pointer 3: the last ``p3 + 1`` cells hold the largest
      values in order (a pass carried the unsettled prefix's maximum to its place).
    - RESET: pointers 1 and 2 on the first cell, pointer 3 unchanged.
    - BSTEP: the two cells under pointers 1 and 2 at the call are in order (the smaller value
      on the left) and the pointers moved as RSHIFT moves them.
    - COMPSWAP: those two cells in order, pointers unchanged.
    - LSHIFT / RSHIFT: pointers 1 and 2 one cell left / right of where they were (a pointer
      already at that edge stays), pointer 3 unchanged.
    - RJMP: pointers 1 and 2 on the last cell, pointer 3 unchanged.
    - MAX: pointers 1 and 2 on the last cell, which holds the array's maximum, and the array
      is a permutation of the original.

    The shifts, RESET, BSTEP and COMPSWAP cannot reach other cells (they call MOVE_PTR or
    SWAP at the call's cells only), so their checks cover everything they can change.
    ``num_programs`` (static) skips the rows of programs the library lacks (MAX's O(length)
    maximum for Sorting).
    """
    snap: Snapshot = frame.snapshot
    p = pad.pointers
    last = pad.length - 1
    p3_kept = p[c.P3] == snap.pointers[c.P3]
    lo = jnp.minimum(snap.pointers[c.P1], snap.pointers[c.P2])
    hi = jnp.maximum(snap.pointers[c.P1], snap.pointers[c.P2])
    ordered = ((pad.cells[lo] == jnp.min(snap.cells)) & (pad.cells[hi] == jnp.max(snap.cells)))
    both_last = (p[c.P1] == last) & (p[c.P2] == last)

    def shifted(step: int) -> chex.Array:
        return jnp.all(p[: c.P3] == _shift_targets(pad, snap, step)) & p3_kept

    false = jnp.zeros((), bool)
    rows = [
        false, false, false,  # RETURN and the primitives own no frame
        settled_suffix(pad, pad.length) & is_permutation(pad) & (p[c.P3] == last),
        both_last & p3_kept & settled_suffix(pad, snap.pointers[c.P3] + 1),
        (p[c.P1] == 0) & (p[c.P2] == 0) & p3_kept,
        ordered & shifted(+1),
        ordered & jnp.all(p == snap.pointers),
        shifted(-1),
        shifted(+1),
    ]
    if num_programs > c.RJMP:
        top = pad.cells[p[c.P1]] == jnp.max(pad.cells)
        rows += [both_last & p3_kept, both_last & top & is_permutation(pad)]
    return jnp.stack(rows)[frame.program]


def snapshot(pad: SortPad) -> Snapshot:
    return Snapshot(pointers=pad.pointers, cells=cells_under_pointers(pad))


def max_inversions(pad: SortPad) -> chex.Array:
    """``length * (length - 1) / 2``, the most inversions an array of this length can have."""
    n = pad.length
    return jnp.maximum(n * (n - 1) // 2, 1)


def progress(pad: SortPad) -> chex.Array:
    """Inversions removed since the reset over ``length * (length - 1) / 2``.

    The dense reward is its change per step: the number of inversions a step removed,
    normalised by the most an array of this length can have (counting the instance's own
    inversions would cost O(length^2) in every reset under ``vmap``). Only its differences
    matter: they equal those of ``1 - inversions / (length * (length - 1) / 2)``, in [0, 1].
    """
    return pad.inversions_removed / max_inversions(pad)


def full_view(pad: SortPad) -> FullView:
    return FullView(cells=pad.cells, length=pad.length, pointers=pad.pointers)


def expert_steps(length: chex.Array, inversions: chex.Array) -> chex.Array:
    """Agent steps of the expert's BUBBLESORT in the hierarchical posing, RETURNs included.

    With ``m = length - 1``: each of the ``m`` passes costs ``12 m + 5`` calls (BUBBLE's
    ``8 m + 1``, RESET's ``4 m + 1``, and BUBBLE, RESET, PTR 3 RIGHT themselves) plus one
    SWAP per swap, and bubble sort swaps each inversion once; the final RETURN adds 1.
    """
    m = jnp.maximum(jnp.asarray(length, jnp.int32) - 1, 0)
    return 12 * m * m + 5 * m + 1 + jnp.asarray(inversions, jnp.int32)


def rjmp_steps(length: chex.Array) -> chex.Array:
    """Agent steps MAX adds to BUBBLESORT: calling it, RJMP's ``m`` RSHIFTs of 3 calls each
    and its RETURN, calling RJMP and MAX's RETURN (``4 m + 4``)."""
    m = jnp.maximum(jnp.asarray(length, jnp.int32) - 1, 0)
    return 4 * m + 4


def default_step_limit(pad: SortPad) -> chex.Array:
    """Twice the expert's worst case for this instance's length (a reversed array, with
    ``length * (length - 1) / 2`` inversions)."""
    n = pad.length
    return 2 * expert_steps(n, n * (n - 1) // 2)


def max_default_step_limit(pad: SortPad) -> chex.Array:
    """Max-v0's default: twice the expert's worst case, BUBBLESORT's plus RJMP's."""
    n = pad.length
    return 2 * (expert_steps(n, n * (n - 1) // 2) + rjmp_steps(n))
