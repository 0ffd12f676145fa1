"""The addition task's pure functions: the column-by-column sum check, primitives, views."""

import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from npigym.envs.addition import RandomGenerator, task
from npigym.envs.addition import constants as c
from npigym.envs.addition.generator import make_scratchpad
from npigym.envs.addition.viewer import row_number
from npigym.envs.machine.types import Frame


def pad_for(a: int, b: int, width: int):
    """A scratchpad for a + b built from Python ints."""
    digits = np.zeros((2, width), np.int32)
    for row, x in enumerate((a, b)):
        s = str(x)
        digits[row, width - 1 - len(s): width - 1] = [int(ch) for ch in s]
    return make_scratchpad(jnp.asarray(digits[0]), jnp.asarray(digits[1]),
                           jnp.int32(len(str(a))), jnp.int32(len(str(b))))


def with_out(pad, out_digits: str, width: int, blanks=()):
    row = np.full((width,), c.BLANK, np.int8)
    row[0] = row[-1] = c.SENTINEL
    for j, ch in enumerate(reversed(out_digits)):
        row[width - 2 - j] = int(ch) + 1
    for col in blanks:
        row[col] = c.BLANK
    return pad.replace(pad=pad.pad.at[c.OUT].set(jnp.asarray(row)))


def test_check_sum__agrees_with_integer_addition_on_random_rows():
    """Exact sums, corrupted cells and partly written OUT rows, against Python ints."""
    width = 16
    rng = random.Random(0)
    check = jax.jit(task.check_sum)
    for _ in range(300):
        a, b = rng.randrange(10 ** rng.randint(1, 12)), rng.randrange(10 ** rng.randint(1, 12))
        answer = str(a + b)
        pad = pad_for(a, b, width)
        kind = rng.random()
        out = answer
        if kind < 0.3:  # a wrong digit somewhere
            j = rng.randrange(len(out))
            out = out[:j] + str((int(out[j]) + rng.randint(1, 9)) % 10) + out[j + 1:]
        elif kind < 0.5:  # an extra leading digit
            out = str(rng.randint(1, 9)) + out
        elif kind < 0.8:  # only the k lowest digits written so far
            k = rng.randint(0, len(answer))
            out = answer[len(answer) - k:] if k else ""
        solved, correct = check(with_out(pad, out, width))
        assert bool(solved) == (out == answer), (a, b, out)
        expect = 0
        while (expect < min(len(answer), len(out))
               and out[-1 - expect] == answer[-1 - expect]):
            expect += 1
        if out == answer:
            expect = width  # every column, blanks included, is right
        n = max(len(str(a)), len(str(b)))
        assert min(int(correct), n) == min(expect, n), (a, b, out, int(correct))


def test_check_sum__a_blank_where_a_zero_belongs_is_wrong():
    width = 8
    pad = pad_for(5, 5, width)  # 10: OUT needs "1" and "0"
    solved, correct = task.check_sum(with_out(pad, "10", width))
    assert bool(solved) and int(correct) >= 2
    solved, correct = task.check_sum(with_out(pad, "10", width, blanks=(width - 2,)))
    assert not bool(solved) and int(correct) == 0


def test_progress__counts_columns_from_the_units_up():
    width = 10
    pad = pad_for(456, 789, width)  # 1245
    assert float(task.progress(pad)) == 0.0
    assert float(task.progress(with_out(pad, "45", width))) == pytest.approx(2 / 3)
    assert float(task.progress(with_out(pad, "1245", width))) == 1.0
    assert float(task.progress(with_out(pad, "1345", width))) == pytest.approx(2 / 3)


def test_apply_primitive__moves_and_writes():
    pad = pad_for(12, 34, 8)
    moved, ok = task.apply_primitive(pad, jnp.int32(c.MOVE_PTR), jnp.array([c.IN2, c.LEFT, 0]))
    assert bool(ok) and int(moved.pointers[c.IN2]) == 5
    written, ok = task.apply_primitive(pad, jnp.int32(c.WRITE), jnp.array([c.OUT, 6, 0]))
    assert bool(ok) and int(written.pad[c.OUT, 6]) == 7
    _, ok = task.apply_primitive(pad, jnp.int32(c.WRITE), jnp.array([c.IN1, 6, 0]))
    assert not bool(ok)
    right, ok = task.apply_primitive(pad, jnp.int32(c.MOVE_PTR), jnp.array([c.OUT, c.RIGHT, 0]))
    assert bool(ok) and int(right.pointers[c.OUT]) == 7  # onto the edge cell
    _, ok = task.apply_primitive(right, jnp.int32(c.WRITE), jnp.array([c.OUT, 1, 0]))
    assert not bool(ok)  # no writing on the edge
    _, ok = task.apply_primitive(right, jnp.int32(c.MOVE_PTR), jnp.array([c.OUT, c.RIGHT, 0]))
    assert not bool(ok)  # off the pad: no wrap-around


def _postcondition(program, before, after):
    """``program``'s postcondition for a frame called in ``before`` and returning in ``after``."""
    frame = Frame(jnp.int32(program), jnp.zeros(3, jnp.int32), jnp.int32(0), task.snapshot(before))
    return bool(task.postcondition(after, frame))


def _apply(pad, *calls):
    for program, a0, a1 in calls:
        pad, ok = task.apply_primitive(pad, jnp.int32(program), jnp.array([a0, a1, 0]))
        assert bool(ok)
    return pad


def test_postcondition__add1_needs_the_digit_the_carry_and_the_pointers_back():
    pad = pad_for(96, 125, 7)  # units column 6 + 5 = 11: write 1, carry 1 to the left
    carry = [(c.MOVE_PTR, c.CARRY, c.LEFT), (c.WRITE, c.CARRY, 1), (c.MOVE_PTR, c.CARRY, c.RIGHT)]
    done = _apply(pad, (c.WRITE, c.OUT, 1), *carry)
    assert _postcondition(c.ADD1, pad, done)
    assert not _postcondition(c.ADD1, pad, _apply(pad, (c.WRITE, c.OUT, 2), *carry))  # digit
    assert not _postcondition(c.ADD1, pad, _apply(pad, (c.WRITE, c.OUT, 1)))  # no carry
    assert not _postcondition(c.ADD1, pad, _apply(done, (c.MOVE_PTR, c.OUT, c.LEFT)))  # moved
    assert _postcondition(c.CARRY_PROGRAM, pad, _apply(pad, *carry))
    shifted = _apply(pad, *[(c.MOVE_PTR, row, c.LEFT) for row in range(c.NUM_ROWS)])
    assert _postcondition(c.LSHIFT, pad, shifted) and not _postcondition(c.RSHIFT, pad, shifted)
    # No carry needed below 10: 3 + 4.
    small = pad_for(3, 4, 5)
    assert _postcondition(c.ADD1, small, _apply(small, (c.WRITE, c.OUT, 7)))


def test_postcondition__subprograms_fail_on_stray_writes_and_pass_on_rewrites():
    pad = pad_for(96, 125, 7)  # units column 6 + 5 = 11
    left, right = (c.MOVE_PTR, c.CARRY, c.LEFT), (c.MOVE_PTR, c.CARRY, c.RIGHT)
    carry = [left, (c.WRITE, c.CARRY, 1), right]
    # Rewriting the cells a program may change is fine: the postcondition judges the state.
    assert _postcondition(c.ADD1, pad, _apply(pad, (c.WRITE, c.OUT, 9), (c.WRITE, c.OUT, 1),
                                              *carry))
    # Scratch in OUT inside CARRY, or junk in the carry cell under the pointer, is not.
    out_left = [(c.MOVE_PTR, c.OUT, c.LEFT), (c.WRITE, c.OUT, 9), (c.MOVE_PTR, c.OUT, c.RIGHT)]
    assert not _postcondition(c.CARRY_PROGRAM, pad, _apply(pad, *carry, *out_left))
    assert not _postcondition(c.CARRY_PROGRAM, pad, _apply(pad, (c.WRITE, c.OUT, 1), *carry))
    assert not _postcondition(c.ADD1, pad, _apply(pad, (c.WRITE, c.OUT, 1), *carry,
                                                  (c.WRITE, c.CARRY, 1)))
    # A column without a carry may not write one; a shift writes nothing.
    small = pad_for(3, 4, 5)
    assert not _postcondition(c.ADD1, small, _apply(small, (c.WRITE, c.OUT, 7), *carry))
    shifted = _apply(pad, *[(c.MOVE_PTR, row, c.LEFT) for row in range(c.NUM_ROWS)])
    assert not _postcondition(c.LSHIFT, pad, _apply(shifted, (c.WRITE, c.OUT, 0)))
    # The fingerprint moves by the same amount whichever order two writes come in.
    a = _apply(pad, (c.WRITE, c.OUT, 1), left, (c.WRITE, c.CARRY, 1))
    b = _apply(pad, left, (c.WRITE, c.CARRY, 1), (c.WRITE, c.OUT, 1))
    assert int(a.ink) == int(b.ink) != int(pad.ink)


def test_postcondition__add_needs_the_sum_and_the_pointers_past_its_top_digit():
    pad = pad_for(96, 125, 7)
    summed = with_out(pad, "221", 7)
    assert bool(task.check_sum(summed)[0])
    # Right after the last ADD1 the pointers are still on the top column: nothing there tells
    # the agent that no column is left, so returning there is not ADD's job done.
    on_top = summed.replace(pointers=jnp.full(4, 3, jnp.int32))
    assert not _postcondition(c.ADD, pad, on_top)
    past = summed.replace(pointers=jnp.full(4, 2, jnp.int32))
    assert _postcondition(c.ADD, pad, past)
    # Any column further left counts too; OUT's pointer is free.
    assert _postcondition(c.ADD, pad, summed.replace(pointers=jnp.array([1, 0, 2, 5])))
    assert not _postcondition(c.ADD, pad, summed.replace(pointers=jnp.array([2, 2, 3, 2])))
    assert not _postcondition(c.ADD, pad, pad.replace(pointers=past.pointers))  # no sum


def test_cells_under_pointers__is_the_npi_observation():
    pad = pad_for(96, 125, 7)
    np.testing.assert_array_equal(task.cells_under_pointers(pad), [7, 6, c.BLANK, c.BLANK])


def test_random_generator__sizes_digits_and_layout():
    generator = RandomGenerator(min_digits=2, max_digits=6)
    pads = jax.jit(jax.vmap(generator))(jax.random.split(jax.random.PRNGKey(0), 2000))
    n = np.asarray(pads.num_digits)
    assert n.min() == 2 and n.max() == 6
    rows = np.asarray(pads.pad)
    assert (rows[:, :, 0] == c.SENTINEL).all() and (rows[:, :, -1] == c.SENTINEL).all()
    assert (rows[:, c.CARRY:, 1:-1] == c.BLANK).all()
    lengths = []
    for i in range(2000):
        a, b = row_number(rows[i, c.IN1]), row_number(rows[i, c.IN2])
        assert max(len(a), len(b)) == n[i]
        for r in (c.IN1, c.IN2):  # no leading zeros: the leftmost written digit is not 0
            written = [v for v in rows[i, r] if c.BLANK < v < c.SENTINEL]
            assert len(written) == 1 or written[0] != 1
        lengths.append((len(a), len(b)))
    assert any(x != y for x, y in lengths)  # operands of different lengths occur
    digits = rows[:, :2, 1:-1][(rows[:, :2, 1:-1] > 0)] - 1
    counts = np.bincount(digits, minlength=10)
    assert counts.min() > 0.6 * counts.mean()  # every digit common (leading digits skew 0 down)


def test_random_generator__validates_its_knobs():
    with pytest.raises(ValueError, match="max_digits"):
        RandomGenerator(1, 0)
    with pytest.raises(ValueError, match="min_digits"):
        RandomGenerator(7, 6)
