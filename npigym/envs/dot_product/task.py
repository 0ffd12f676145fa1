"""The dot-product task's own functions, and its view of the state as a multiplication.

DOT's own primitive, expert, postcondition and views are here; Multiplication's programs (MUL
and, through it, ADD's) run on :func:`multiplication_view` through
``npigym.envs.composition.Embedding`` (see ``env.py``). Pure functions of one state.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

from npigym.envs.dot_product import constants as c
from npigym.envs.dot_product.types import DotPad, FullView, Snapshot
from npigym.envs.multiplication import constants as mc
from npigym.envs.multiplication import task as mul
from npigym.envs.multiplication.types import MulPad


def multiplication_view(d: DotPad) -> MulPad:
    """The current pair as Multiplication's pad: A = x_i, B = y_i, and the shared ACC, CARRY
    and OUT rows, so MUL adds x_i * y_i to the running sum."""
    i = d.pair
    return MulPad(pad=jnp.concatenate([d.x[i][None], d.y[i][None], d.work]),
                  add_pointers=d.add_pointers, b_pointer=d.b_pointer, reps=d.reps, ink=d.ink,
                  len_a=d.len_x[i], len_b=d.len_y[i])


def embed_multiplication(d: DotPad, m: MulPad) -> DotPad:
    """``d`` after Multiplication's programs changed the view ``m`` (they never write A or B)."""
    return d.replace(work=m.pad[mc.ACC:], add_pointers=m.add_pointers, b_pointer=m.b_pointer,
                     reps=m.reps, ink=m.ink)


def apply_next_pair(d: DotPad) -> tuple[DotPad, chex.Array]:
    """NEXT_PAIR: the next pair becomes current, its multiplier pointer on the units column;
    invalid on the last pair and before the current pair is done (its multiplier's digits
    used up, no sum pending), for the reason Multiplication's NEXT waits for a settled digit."""
    width = d.work.shape[1]
    moved = d.replace(pair=d.pair + 1, b_pointer=jnp.asarray(width - 2, jnp.int32),
                      reps=jnp.zeros((), jnp.int32),
                      add_pointers=jnp.full((4,), width - 2, jnp.int32))
    pending = mul.is_digit(d.work[2, width - 2])
    return moved, (d.pair + 1 < d.num_pairs) & pair_done(d) & ~pending


def pair_done(d: DotPad) -> chex.Array:
    """() bool: the current pair's multiplier digits are used up (its MUL has run)."""
    return ~mul.is_digit(d.y[d.pair, d.b_pointer])


def expert_call(d: DotPad) -> chex.Array:
    """DOT's next call: MUL until the pair is done, then NEXT_PAIR, RETURN after the last."""
    call = jnp.where(~pair_done(d), mc.MUL,
                     jnp.where(d.pair + 1 < d.num_pairs, c.NEXT_PAIR, mc.RETURN))
    return jnp.stack([call, 0, 0, 0]).astype(jnp.int32)


def _products(d: DotPad, upto: chex.Array) -> chex.Array:
    """(2,) uint32: residues of the sum of x_i * y_i over pairs i < ``upto``."""
    rx = jnp.stack([mul.residues(r) for r in d.x])  # (pairs, 2)
    ry = jnp.stack([mul.residues(r) for r in d.y])
    terms = mul.mul_mod(rx, ry)
    live = (jnp.arange(d.x.shape[0]) < upto)[:, None]
    primes = jnp.asarray(mc.PRIMES, jnp.uint32)
    return jnp.sum(jnp.where(live, terms, 0), axis=0) % primes


def dot_postcondition(d: DotPad, snap: Snapshot) -> chex.Array:
    """DOT: ACC holds (ACC at call) + the sum of x_i * y_i as a well-formed number, OUT and
    CARRY are clear, and the last pair is done."""
    want = mul.add_mod(snap.acc, _products(d, d.num_pairs))
    acc = d.work[0]
    right = jnp.all(mul.residues(acc) == want) & mul.well_formed(acc)
    clear = (mul.num_digits(d.work[1]) == 0) & (mul.num_digits(d.work[2]) == 0)
    return right & clear & (d.pair == d.num_pairs - 1) & pair_done(d)


def snapshot(d: DotPad, mul_snapshot) -> Snapshot:
    return Snapshot(acc=mul.residues(d.work[0]), mul=mul_snapshot)


def own_view(d: DotPad) -> chex.Array:
    """(1,) int32: whether a pair follows the current one."""
    return (d.pair + 1 < d.num_pairs).astype(jnp.int32)[None]


def full_view(d: DotPad) -> FullView:
    return FullView(x=d.x, y=d.y, work=d.work, pair=d.pair, add_pointers=d.add_pointers,
                    b_pointer=d.b_pointer)


def progress(d: DotPad) -> chex.Array:
    """Additions made over all the pairs' additions, counted while ACC is right for them."""
    m = multiplication_view(d)
    expected, done, _ = mul.partial_product(m.pad[mc.A], m.pad[mc.B], d.b_pointer, d.reps)
    live = jnp.arange(d.y.shape[0]) < d.num_pairs
    sums = jnp.stack([jnp.sum(mul.digit_value(r)) for r in d.y])
    before = jnp.sum(jnp.where(jnp.arange(d.y.shape[0]) < d.pair, sums, 0))
    total = jnp.sum(jnp.where(live, sums, 0))
    right = jnp.all(mul.residues(d.work[0]) == mul.add_mod(_products(d, d.pair), expected))
    return jnp.where(right, (before + done) / jnp.maximum(total, 1), 0.0).astype(jnp.float32)


def default_step_limit(d: DotPad) -> chex.Array:
    """Twice the hierarchical expert's worst case: each pair's MUL (Multiplication's), the
    MUL calls and NEXT_PAIRs, RETURN."""
    size = jnp.max(d.len_x) + jnp.max(d.len_y) + 1
    per_addition = mc.ADD_STEPS_PER_COLUMN * (size + 1) + 1 + 2
    per_pair = jnp.max(d.len_y) * (9 * per_addition + 1) + 1 + 2
    return 2 * (d.num_pairs * per_pair + 1)


