"""The multiplication task's own functions, and its view of the pad as an Addition scratchpad.

MUL's own primitives, expert, postcondition and views are here; ADD's programs run on
:func:`addition_view` through ``npigym.envs.composition.Embedding`` (see ``env.py``). All are
pure functions of one (unbatched) pad; the machine vmaps them.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np

from npigym.envs.addition import constants as ac
from npigym.envs.addition.types import Scratchpad
from npigym.envs.machine.stack import tree_where
from npigym.envs.multiplication import constants as c
from npigym.envs.multiplication.generator import empty_row
from npigym.envs.multiplication.types import FullView, MulPad, Snapshot


def is_digit(cell: chex.Array) -> chex.Array:
    return (cell > c.BLANK) & (cell < c.SENTINEL)


def digit_value(cell: chex.Array) -> chex.Array:
    """A cell's digit, 0 for blanks and edges."""
    cell = jnp.asarray(cell, jnp.int32)
    return jnp.where(is_digit(cell), cell - 1, 0)


def place(m: MulPad) -> chex.Array:
    """() int32, the decimal place of the multiplier digit under ``b_pointer``."""
    return (m.pad.shape[1] - 2) - m.b_pointer


def num_digits(row: chex.Array) -> chex.Array:
    """() int32, the digits a pad row holds."""
    return jnp.sum(is_digit(row)).astype(jnp.int32)


# ----------------------------------------------------------------------------------------------
# The Addition view: what ADD's programs (and an Addition skill) see.
# ----------------------------------------------------------------------------------------------
def shifted_multiplicand(m: MulPad) -> chex.Array:
    """Row A shifted left to the current multiplier digit's place, zeros written below it
    (as on paper), so ADD adds ``A * 10**place`` to the running total."""
    width = m.pad.shape[1]
    col = jnp.arange(width)
    src = col + place(m)
    edge = (col == 0) | (col == width - 1)
    shifted = jnp.where(src <= width - 2, m.pad[c.A, jnp.clip(src, 0, width - 1)],
                        jnp.int8(c.ZERO))
    return jnp.where(edge, jnp.int8(c.SENTINEL), shifted)


def addition_view(m: MulPad) -> Scratchpad:
    """The pad as Addition's scratchpad: IN1 the running total ACC, IN2 the shifted
    multiplicand, CARRY and OUT the pad's own; its pointers, fingerprint and size."""
    pad = jnp.stack([m.pad[c.ACC], shifted_multiplicand(m), m.pad[c.CARRY], m.pad[c.OUT]])
    size = jnp.maximum(num_digits(m.pad[c.ACC]), m.len_a + place(m))
    return Scratchpad(pad=pad, pointers=m.add_pointers, num_digits=size, ink=m.ink)


def embed_addition(m: MulPad, s: Scratchpad) -> MulPad:
    """``m`` after ADD's programs changed the view ``s`` (IN2 is never written: ADD's WRITE
    takes CARRY and OUT only)."""
    pad = jnp.stack([m.pad[c.A], m.pad[c.B], s.pad[ac.IN1], s.pad[ac.CARRY], s.pad[ac.OUT]])
    return m.replace(pad=pad, add_pointers=s.pointers, ink=s.ink)


# ----------------------------------------------------------------------------------------------
# Residues: the product checked without big integers.
# ----------------------------------------------------------------------------------------------
def _powers(width: int) -> np.ndarray:
    """(2, width) uint32, ``10**place mod p`` per column for each prime (0 at the edges)."""
    out = np.zeros((len(c.PRIMES), width), np.uint32)
    for i, p in enumerate(c.PRIMES):
        value = 1
        for col in range(width - 2, 0, -1):
            out[i, col] = value
            value = value * 10 % p
    return out


def residues(row: chex.Array) -> chex.Array:
    """(2,) uint32: the number in a pad row modulo each of ``constants.PRIMES``.

    MUL's postcondition compares ACC with ``ACC at call + A * B`` modulo two primes near
    2**16: a wrong total passes with probability about 2**-32, and no big-integer product is
    computed (the same idea as Addition's fingerprint). Each column's term is reduced before
    the sum, so a row of up to 65,536 columns fits uint32.
    """
    primes = jnp.asarray(c.PRIMES, jnp.uint32)[:, None]
    terms = digit_value(row).astype(jnp.uint32)[None, :] * jnp.asarray(_powers(row.shape[0]))
    return jnp.sum(terms % primes, axis=1) % primes[:, 0]


def mul_mod(x: chex.Array, y: chex.Array) -> chex.Array:
    return (x * y) % jnp.asarray(c.PRIMES, jnp.uint32)


def add_mod(x: chex.Array, y: chex.Array) -> chex.Array:
    return (x + y) % jnp.asarray(c.PRIMES, jnp.uint32)


def well_formed(row: chex.Array) -> chex.Array:
    """() bool: the row's digits run contiguously from the units column up (a number)."""
    width = row.shape[0]
    pos = (width - 2) - jnp.arange(width)
    return jnp.all(is_digit(row) == ((pos >= 0) & (pos < num_digits(row))))


# ----------------------------------------------------------------------------------------------
# MUL's own functions.
# ----------------------------------------------------------------------------------------------
def pending(m: MulPad) -> chex.Array:
    """() bool: OUT holds a sum not yet committed (a digit in its units column)."""
    return is_digit(m.pad[c.OUT, m.pad.shape[1] - 2])


def apply_primitive(m: MulPad, program: chex.Array) -> tuple[MulPad, chex.Array]:
    """COMMIT or NEXT (Addition's primitives go through the view).

    COMMIT: ACC takes OUT's sum, OUT and CARRY are cleared, the view's pointers go back to the
    units column and the digit's addition count goes up; invalid with no sum in OUT. NEXT: the
    multiplier pointer moves to the next digit and the count restarts; invalid once past the
    multiplier's top digit, and before the digit is settled (as many additions committed as
    the digit, none pending), as Sorting's pointer 3 moves only over settled cells. Why: a
    NEXT that skipped additions could never be mended, and under the dense reward it lost all
    progress at once; agents learned never to call NEXT (0 % success after 5 M steps).
    """
    width = m.pad.shape[1]
    empty = empty_row(width)
    units = jnp.full((4,), width - 2, jnp.int32)
    committed = m.replace(
        pad=jnp.stack([m.pad[c.A], m.pad[c.B], m.pad[c.OUT], empty, empty]),
        add_pointers=units, ink=jnp.zeros((), jnp.uint32), reps=m.reps + 1)
    moved = m.replace(b_pointer=m.b_pointer - 1, reps=jnp.zeros((), jnp.int32))
    is_commit = program == c.COMMIT
    cell = m.pad[c.B, m.b_pointer]
    settled = is_digit(cell) & (m.reps >= digit_value(cell)) & ~pending(m)
    ok = jnp.where(is_commit, pending(m), (program == c.NEXT) & settled)
    return tree_where(is_commit, committed, moved), ok


def expert_call(m: MulPad) -> chex.Array:
    """MUL's next call: COMMIT a pending sum; else ADD while the digit's additions are fewer
    than the digit; else NEXT; RETURN past the multiplier's top digit."""
    cell = m.pad[c.B, m.b_pointer]
    call = jnp.where(pending(m), c.COMMIT,
                     jnp.where(~is_digit(cell), c.RETURN,
                               jnp.where(m.reps < digit_value(cell), c.ADD, c.NEXT)))
    return jnp.stack([call, 0, 0, 0]).astype(jnp.int32)


def mul_postcondition(m: MulPad, snap: Snapshot) -> chex.Array:
    """MUL: ACC holds (ACC at call) + A * B as a well-formed number, OUT and CARRY are clear,
    and the multiplier pointer is past its top digit."""
    want = add_mod(snap.acc, mul_mod(residues(m.pad[c.A]), residues(m.pad[c.B])))
    right = jnp.all(residues(m.pad[c.ACC]) == want) & well_formed(m.pad[c.ACC])
    clear = (num_digits(m.pad[c.OUT]) == 0) & (num_digits(m.pad[c.CARRY]) == 0)
    return right & clear & ~is_digit(m.pad[c.B, m.b_pointer])


def snapshot(m: MulPad, add_snapshot) -> Snapshot:
    return Snapshot(acc=residues(m.pad[c.ACC]), add=add_snapshot)


def own_view(m: MulPad) -> chex.Array:
    """(3,) int32: the multiplier's cell under its pointer, the digit's additions so far
    (clipped at 9) and whether a sum waits in OUT."""
    return jnp.stack([m.pad[c.B, m.b_pointer].astype(jnp.int32),
                      jnp.minimum(m.reps, c.MAX_REPS), pending(m).astype(jnp.int32)])


def full_view(m: MulPad) -> FullView:
    return FullView(pad=m.pad, add_pointers=m.add_pointers, b_pointer=m.b_pointer)


def partial_product(a_row: chex.Array, b_row: chex.Array, b_pointer: chex.Array,
                    reps: chex.Array) -> tuple[chex.Array, chex.Array, chex.Array]:
    """How far a multiplication by place value has come, and what it should have made.

    Returns:
        expected: (2,) uint32, the residues of ``A * (B's digits below the pointer's place +
            made * 10**place)``, the value the additions made so far add up to.
        done: () int32, additions made (the digits below the place, plus the current
            digit's additions up to the digit).
        total: () int32, additions the whole product needs (the sum of B's digits).
    """
    width = b_row.shape[0]
    pos = (width - 2) - jnp.arange(width)
    j = (width - 2) - b_pointer
    made = jnp.minimum(reps, digit_value(b_row[b_pointer]))
    b = digit_value(b_row)
    done = jnp.sum(jnp.where(pos < j, b, 0)) + made
    below = jnp.where(pos < j, b_row, jnp.int8(c.BLANK))
    power = jnp.asarray(_powers(width))[:, jnp.clip(width - 2 - j, 0, width - 1)]
    expected = mul_mod(residues(a_row),
                        add_mod(residues(below), mul_mod(made.astype(jnp.uint32), power)))
    return expected, done.astype(jnp.int32), jnp.sum(b).astype(jnp.int32)


def progress(m: MulPad) -> chex.Array:
    """Additions made over the additions the product needs (the sum of the multiplier's
    digits), counted only while ACC is right for them (0 after a wrong commit)."""
    expected, done, total = partial_product(m.pad[c.A], m.pad[c.B], m.b_pointer, m.reps)
    right = jnp.all(residues(m.pad[c.ACC]) == expected)
    return jnp.where(right, done / jnp.maximum(total, 1), 0.0).astype(jnp.float32)


def default_step_limit(m: MulPad) -> chex.Array:
    """Twice the hierarchical expert's worst case (every multiplier digit a 9, every column
    carrying): per digit 9 additions (ADD's frame, ADD, COMMIT) and NEXT, then RETURN."""
    size = m.len_a + m.len_b
    per_addition = c.ADD_STEPS_PER_COLUMN * (size + 1) + 1 + 2
    return 2 * (m.len_b * (9 * per_addition + 1) + 1)
