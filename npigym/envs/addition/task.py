"""The addition task's functions: primitives, expert, postconditions, views.

All are pure functions of one (unbatched) scratchpad; the machine vmaps them.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

from npigym.envs.addition import constants as c
from npigym.envs.addition.types import FullView, Scratchpad, Snapshot
from npigym.envs.machine.stack import tree_where
from npigym.envs.machine.types import Frame


def cells_under_pointers(pad: Scratchpad) -> chex.Array:
    """(4,) int32: the value under each row's pointer (NPI's addition observation)."""
    return pad.pad[jnp.arange(c.NUM_ROWS), pad.pointers].astype(jnp.int32)


def cell_key(row: chex.Array, col: chex.Array) -> chex.Array:
    """() uint32, odd and pseudo-random: a cell's weight in the pad's fingerprint (ink)."""
    k = (jnp.asarray(col).astype(jnp.uint32) * jnp.uint32(c.NUM_ROWS)
         + jnp.asarray(row).astype(jnp.uint32)) * jnp.uint32(0x9E3779B1)
    k = (k ^ (k >> 15)) * jnp.uint32(0x85EBCA77)
    return k | jnp.uint32(1)


def _ink(row: chex.Array, col: chex.Array, new: chex.Array, old: chex.Array) -> chex.Array:
    """The fingerprint's change when the cell (row, col) goes from ``old`` to ``new``."""
    change = new.astype(jnp.int32) - old.astype(jnp.int32)
    return cell_key(row, col) * change.astype(jnp.uint32)  # wraps mod 2**32, as intended


def wrote_only(pad: Scratchpad, snap: Snapshot, out: chex.Array, carry: chex.Array
               ) -> chex.Array:
    """Whether, since ``snap``, the pad changed nowhere but in the cells a program may write.

    ``out`` / ``carry``: () bool, whether the program may write OUT under its pointer / CARRY
    left of its pointer (the pointers at call time). The fingerprint is linear in the pad, so
    taking those cells' own changes out of it leaves the change everywhere else: 0 mod 2**32
    when nothing else changed, never 0 when one other cell did (its key is odd, the change
    small), and 0 by chance (about 1 in 2**32, pseudo-random keys) when several did. Rewriting
    an allowed cell before returning is fine: the postconditions judge the state, not the path.
    """
    out_col = snap.pointers[c.OUT]
    carry_col = _carry_left(snap.pointers)
    allowed = (jnp.where(out, _ink(c.OUT, out_col, pad.pad[c.OUT, out_col], snap.out_cell),
                         jnp.uint32(0))
               + jnp.where(carry, _ink(c.CARRY, carry_col, pad.pad[c.CARRY, carry_col],
                                       snap.carry_cell), jnp.uint32(0)))
    return pad.ink - snap.ink == allowed


def _carry_left(pointers: chex.Array) -> chex.Array:
    """The column left of the carry pointer, where CARRY writes (clipped: 0 is an edge)."""
    return jnp.maximum(pointers[c.CARRY] - 1, 0)


def digit_value(cell: chex.Array) -> chex.Array:
    """A cell's digit, 0 for blanks and edges."""
    is_digit = (cell > c.BLANK) & (cell < c.SENTINEL)
    return jnp.where(is_digit, cell - 1, 0)


def check_sum(pad: Scratchpad) -> tuple[chex.Array, chex.Array]:
    """Whether OUT holds IN1 + IN2, and how many digits from the units up it has right.

    Returns:
        solved: () bool, OUT is exactly the sum (blank elsewhere).
        correct: () int32, the number of columns from the units up that OUT has right.
    """
    column_ok, _, pos = check_columns(pad)
    width = pad.pad.shape[1]
    correct = jnp.min(jnp.where(column_ok | (pos < 0), width, pos))
    return jnp.all(column_ok), correct.astype(jnp.int32)


def check_columns(pad: Scratchpad) -> tuple[chex.Array, chex.Array, chex.Array]:
    """Column by column: whether OUT has the sum's digit there (:func:`check_sum`).

    No answer is stored; each column is checked against its neighbour instead. With
    ``e = in1 + in2 - out`` in a column, a correct sum has ``e + carry_in = 10 * carry_out``,
    so ``e`` must be -1, 0, 9 or 10, and that fixes the column's carry in and carry out; the
    carry out must be the carry into the column on the left, and none enters the units
    column. By induction from the units column, every column of a consistent run holds the
    true digit. OUT must also have a digit exactly where the sum has one: below the operands'
    length, plus the top carry. Elementwise with one shift: no carry chain to run.

    Returns:
        column_ok: (width,) bool, OUT is right in the column (a digit where the sum has one).
        needs_digit: (width,) bool, the sum has a digit in the column.
        pos: (width,) int32, the column's place value (0 for the units, -1 for the right edge).
    """
    width = pad.pad.shape[1]
    rows = pad.pad.astype(jnp.int32)
    e = digit_value(rows[c.IN1]) + digit_value(rows[c.IN2]) - digit_value(rows[c.OUT])
    # e in {-1, 0, 9, 10}, written with half the compares (this runs at every step): e >= 9
    # means a carry out, and what is left, e - 10 * carry_out, must be minus the carry in. A
    # column with e above 10 may pass a wrong carry to its left, but is itself rejected, and
    # is lower: neither the sum's verdict nor the count of right columns below it changes.
    carry_out = e >= 9
    rest = e - jnp.where(carry_out, 10, 0)
    carry_in = rest == -1
    from_right = jnp.concatenate([carry_out[1:], jnp.zeros((1,), bool)])
    consistent = (carry_in | (rest == 0)) & (carry_in == from_right)
    pos = (width - 2) - jnp.arange(width)
    n = pad.num_digits
    needs_digit = (pos >= 0) & ((pos < n) | ((pos == n) & carry_in))
    has_digit = (rows[c.OUT] > c.BLANK) & (rows[c.OUT] < c.SENTINEL)
    column_ok = consistent & (has_digit == needs_digit)
    return column_ok, needs_digit, pos


def apply_primitive(pad: Scratchpad, program: chex.Array, args: chex.Array
                    ) -> tuple[Scratchpad, chex.Array]:
    """MOVE_PTR(row, dir) or WRITE(row, digit). Invalid: a move off the pad, a write on an edge
    cell or to an input row (no wrap-around, unlike keras_npi)."""
    chex.assert_shape(args, (3,))
    width = pad.pad.shape[1]
    row = jnp.clip(args[0], 0, c.NUM_ROWS - 1)
    col = pad.pointers[row]
    # The writes are scatters on purpose. As selects (``where(row == r & col == k, ...)``) they
    # made a random rollout 1.17-1.22x slower on XLA:CPU (benchmarks/ab_rollout.py), presumably
    # because XLA counts a select as cheap and fuses a copy of it into every reader of the new
    # pad and pointers, while a scatter is computed once.
    # MOVE_PTR
    target = col + jnp.where(args[1] == c.LEFT, -1, 1)
    move_ok = (target >= 0) & (target < width) & (args[1] <= c.RIGHT)
    moved = pad.replace(pointers=pad.pointers.at[row].set(jnp.clip(target, 0, width - 1)))
    # WRITE
    write_ok = ((row == c.CARRY) | (row == c.OUT)) & (pad.pad[row, col] != c.SENTINEL)
    write_ok &= (args[1] >= 0) & (args[1] <= 9)
    value = (args[1] + 1).astype(jnp.int8)
    written = pad.replace(pad=pad.pad.at[row, col].set(value),
                          ink=pad.ink + _ink(row, col, value, pad.pad[row, col]))

    is_move = program == c.MOVE_PTR
    new = tree_where(is_move, moved, written)
    ok = jnp.where(is_move, move_ok, (program == c.WRITE) & write_ok)
    return new, ok


def expert_call(pad: Scratchpad, frame: Frame) -> chex.Array:
    """NPI's addition trace (Fig. 3b), one call per frame step.

    ADD alternates ADD1 and LSHIFT until the column under the pointers is empty; ADD1 writes
    the column's digit and calls CARRY when the column sum is 10 or more; CARRY moves the carry
    pointer left, writes 1, moves back; LSHIFT moves the four pointers left, IN1 first.
    """
    cells = cells_under_pointers(pad)
    total = jnp.sum(digit_value(cells[: c.OUT]))
    empty = jnp.all((cells[: c.OUT] == c.BLANK) | (cells[: c.OUT] == c.SENTINEL))
    k = frame.steps

    def call(program, a0=0, a1=0):
        return jnp.stack([jnp.asarray(program), jnp.asarray(a0), jnp.asarray(a1),
                          jnp.asarray(0)]).astype(jnp.int32)

    ret = call(c.RETURN)
    add = jnp.where(k % 2 == 1, call(c.LSHIFT), jnp.where(empty, ret, call(c.ADD1)))
    add1 = jnp.where(k == 0, call(c.WRITE, c.OUT, total % 10),
                     jnp.where((k == 1) & (total >= 10), call(c.CARRY_PROGRAM), ret))
    carry_plan = jnp.stack([call(c.MOVE_PTR, c.CARRY, c.LEFT), call(c.WRITE, c.CARRY, 1),
                            call(c.MOVE_PTR, c.CARRY, c.RIGHT), ret])
    carry = carry_plan[jnp.minimum(k, 3)]
    row = jnp.minimum(k, c.NUM_ROWS - 1)
    lshift = jnp.where(k < c.NUM_ROWS, call(c.MOVE_PTR, row, c.LEFT), ret)
    rshift = jnp.where(k < c.NUM_ROWS, call(c.MOVE_PTR, row, c.RIGHT), ret)
    # Rows indexed by program id; primitives and RETURN never own a frame.
    table = jnp.stack([ret, ret, ret, add, add1, carry, lshift, rshift])
    return table[frame.program]


def postcondition(pad: Scratchpad, frame: Frame) -> chex.Array:
    """Whether ``frame``'s program did its job.

    ADD: OUT holds the sum and the IN1, IN2 and CARRY pointers have moved past its top digit
    (where NPI's trace returns). ADD1: OUT under its column holds the column's digit (of the
    values it found there), the next column's carry cell holds 1 if the column sum was 10 or
    more, and the pointers are back. CARRY: the carry cell left of the carry pointer holds 1,
    pointers back. LSHIFT / RSHIFT: every pointer moved one column left / right. ADD1, CARRY,
    LSHIFT and RSHIFT must also leave every other cell as they found it (:func:`wrote_only`).

    Why no stray writes: without that clause, trained agents used OUT as scratch memory
    inside CARRY (writing the column's digit there and again in ADD1), and wrote junk into the
    carry cell under the pointer; both passed, and the skills did not compose into ADD
    (benchmarks/results/learn_subprograms.md).

    Why ADD must step past the sum: the observation shows only the cells under the
    pointers, so right after the last ADD1 nothing tells a policy that no column is left. With
    "OUT holds the sum" alone, RETURN there succeeds on the last column and fails on every other
    one, the same observation: an agent that learns ADD from reward is pulled towards returning
    early (AlphaNPI's postconditions pin the pointers for the same reason).
    """
    snap: Snapshot = frame.snapshot
    width = pad.pad.shape[1]
    total = snap.column_sum
    out_col = snap.pointers[c.OUT]
    carry_left_is_one = (snap.pointers[c.CARRY] >= 1) & (
        pad.pad[c.CARRY, _carry_left(snap.pointers)] == 2)
    same_pointers = jnp.all(pad.pointers == snap.pointers)
    # Every column where the sum has a digit is right of the three pointers: folded into the
    # sum check's one pass over the columns (postconditions run at every step under vmap, and
    # a gather of the cells under the pointers or a second pass cost XLA:CPU 3-18 %).
    column_ok, needs_digit, _ = check_columns(pad)
    right_of_pointers = jnp.arange(width) > jnp.max(pad.pointers[: c.OUT])
    add = jnp.all(column_ok & (right_of_pointers | ~needs_digit))
    carries = total >= 10
    add1 = (pad.pad[c.OUT, out_col] == total % 10 + 1) & (~carries | carry_left_is_one)
    add1 &= same_pointers & wrote_only(pad, snap, out=True, carry=carries)
    carry = carry_left_is_one & same_pointers & wrote_only(pad, snap, out=False, carry=True)
    untouched = pad.ink == snap.ink
    lshift = jnp.all(pad.pointers == snap.pointers - 1) & untouched
    rshift = jnp.all(pad.pointers == snap.pointers + 1) & untouched
    false = jnp.zeros((), bool)
    table = jnp.stack([false, false, false, add, add1, carry, lshift, rshift])
    return table[frame.program]


def snapshot(pad: Scratchpad) -> Snapshot:
    cells = cells_under_pointers(pad)
    return Snapshot(pointers=pad.pointers, column_sum=jnp.sum(digit_value(cells[: c.OUT])),
                    ink=pad.ink, out_cell=cells[c.OUT].astype(jnp.int8),
                    carry_cell=pad.pad[c.CARRY, _carry_left(pad.pointers)])


def progress(pad: Scratchpad) -> chex.Array:
    """Fraction of the operands' columns that OUT has right, counted from the units up.

    (The top carry digit is not counted; the success reward covers it.)
    """
    _, correct = check_sum(pad)
    n = jnp.maximum(pad.num_digits, 1)
    return jnp.minimum(correct, n) / n


def full_view(pad: Scratchpad) -> FullView:
    return FullView(pad=pad.pad, pointers=pad.pointers)


def default_step_limit(pad: Scratchpad) -> chex.Array:
    """Twice the expert's worst case for this instance's size (all columns carrying)."""
    return 2 * (c.EXPERT_STEPS_PER_COLUMN * (pad.num_digits + 1) + 1)
