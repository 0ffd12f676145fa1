"""Multiplication instances: a multiplicand and a multiplier, right-aligned on a scratchpad."""

from __future__ import annotations

import abc
from typing import Optional, Sequence, Tuple

import chex
import jax.numpy as jnp
import numpy as np

from npigym.envs.machine.checks import check_int, check_min_max, check_step_limit
from npigym.envs.machine.generator import Generator, hash_stream, scale16, seed_word, uniform_int
from npigym.envs.multiplication import constants as c
from npigym.envs.multiplication.types import MulPad


def _check_size(name: str, value: int) -> int:
    return check_int(name, value, 1, MAX_WIDTH - c.EXTRA_COLUMNS - 1,
                     "(the residue check of the product sums one term per column in uint32)")


# The widest pad: the residue check of the product sums one term per column in uint32.
MAX_WIDTH = 65_536


def worst_case_step_limit(max_digits: int, max_multiplier_digits: int) -> int:
    """``task.default_step_limit`` of the largest instance, in Python ints (the jitted one is
    int32: this is how a generator knows it fits)."""
    size = max_digits + max_multiplier_digits
    per_addition = c.ADD_STEPS_PER_COLUMN * (size + 1) + 1 + 2
    return 2 * (max_multiplier_digits * (9 * per_addition + 1) + 1)


class MultiplicationGenerator(Generator, abc.ABC):
    """Base of multiplication generators: the operands' largest sizes size the pad.

    The pad has ``max_digits + max_multiplier_digits + 4`` columns: room for the whole product
    in Addition's layout (edge, blank, carry-out, digit columns, edge).
    """

    def __init__(self, max_digits: int, max_multiplier_digits: int):
        self.max_digits = _check_size("max_digits", max_digits)
        self.max_multiplier_digits = _check_size("max_multiplier_digits", max_multiplier_digits)
        if self.width > MAX_WIDTH:
            raise ValueError(f"max_digits + max_multiplier_digits must be at most "
                             f"{MAX_WIDTH - c.EXTRA_COLUMNS:,} (the residue check of the product "
                             f"sums one term per column in uint32), not "
                             f"{self.max_digits + self.max_multiplier_digits:,}")
        check_step_limit("max_digits and max_multiplier_digits",
                         worst_case_step_limit(self.max_digits, self.max_multiplier_digits),
                         f"a {self.max_digits:,} x {self.max_multiplier_digits:,}-digit product")

    @property
    def width(self) -> int:
        return self.max_digits + self.max_multiplier_digits + c.EXTRA_COLUMNS


class RandomGenerator(MultiplicationGenerator):
    """Random problems: a multiplicand of ``min_digits..max_digits`` digits times a multiplier
    of ``min_multiplier_digits..max_multiplier_digits`` digits (default: the same range, within
    ``max_multiplier_digits``). The default step limit of the largest product must fit int32
    (``max_digits = max_multiplier_digits`` up to 2,063).

    Lengths are uniform in their ranges, digits uniform with a leading digit of 1-9 (so both
    operands are positive). An instance costs one 32-bit word from threefry, expanded with an
    integer hash (as Addition's).
    """

    def __init__(self, min_digits: int = 1, max_digits: int = 3,
                 min_multiplier_digits: Optional[int] = None,
                 max_multiplier_digits: Optional[int] = None):
        max_b = max_digits if max_multiplier_digits is None else max_multiplier_digits
        super().__init__(max_digits, max_b)
        self.min_digits = _check_size("min_digits", min_digits)
        # The multiplier's range defaults to the multiplicand's, within max_multiplier_digits.
        min_b = (min(self.min_digits, self.max_multiplier_digits)
                 if min_multiplier_digits is None else min_multiplier_digits)
        self.min_multiplier_digits = _check_size("min_multiplier_digits", min_b)
        check_min_max("min_digits", self.min_digits, "max_digits", self.max_digits)
        check_min_max("min_multiplier_digits", self.min_multiplier_digits,
                      "max_multiplier_digits", self.max_multiplier_digits)

    def __call__(self, key: chex.PRNGKey) -> MulPad:
        seed = seed_word(key)
        len_a = uniform_int(hash_stream(seed, 0), self.min_digits, self.max_digits)
        len_b = uniform_int(hash_stream(seed, 1), self.min_multiplier_digits,
                            self.max_multiplier_digits)
        words = hash_stream(seed, 2 + jnp.arange(self.width))
        low, high = words & 0xFFFF, words >> 16
        pos = (self.width - 2) - jnp.arange(self.width)
        a = jnp.where(pos == len_a - 1, 1 + scale16(low, 9), scale16(low, 10))
        b = jnp.where(pos == len_b - 1, 1 + scale16(high, 9), scale16(high, 10))
        return make_mulpad(a, b, len_a, len_b)

    def __repr__(self) -> str:
        return (f"RandomGenerator(min_digits={self.min_digits}, max_digits={self.max_digits}, "
                f"min_multiplier_digits={self.min_multiplier_digits}, "
                f"max_multiplier_digits={self.max_multiplier_digits})")


class ProblemGenerator(MultiplicationGenerator):
    """Draws uniformly from a fixed list of problems, e.g. ``ProblemGenerator([(96, 125)])``.

    Args:
        problems: pairs of positive ints (multiplicand, multiplier).
        max_digits, max_multiplier_digits: pad size; default the longest operands.
    """

    def __init__(self, problems: Sequence[Tuple[int, int]], max_digits: Optional[int] = None,
                 max_multiplier_digits: Optional[int] = None):
        problems = [tuple(p) for p in problems]
        if not problems:
            raise ValueError("ProblemGenerator needs at least one problem")
        for p in problems:
            if len(p) != 2 or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool)
                                      and x >= 1 for x in p):
                raise ValueError(f"problems must be pairs of positive ints, got {p!r}")
        long_a = max(len(str(a)) for a, _ in problems)
        long_b = max(len(str(b)) for _, b in problems)
        super().__init__(long_a if max_digits is None else max_digits,
                         long_b if max_multiplier_digits is None else max_multiplier_digits)
        if long_a > self.max_digits or long_b > self.max_multiplier_digits:
            raise ValueError(f"a problem has {long_a} x {long_b} digits but the pad holds "
                             f"{self.max_digits} x {self.max_multiplier_digits}")
        self.problems = problems
        digits = np.zeros((len(problems), 2, self.width), np.int32)
        lengths = np.zeros((len(problems), 2), np.int32)
        for i, pair in enumerate(problems):
            for j, x in enumerate(pair):
                s = str(int(x))
                lengths[i, j] = len(s)
                digits[i, j, self.width - 1 - len(s): self.width - 1] = [int(ch) for ch in s]
        self._digits, self._lengths = jnp.asarray(digits), jnp.asarray(lengths)

    def __call__(self, key: chex.PRNGKey) -> MulPad:
        i = uniform_int(seed_word(key), 0, len(self.problems) - 1)
        return make_mulpad(self._digits[i, 0], self._digits[i, 1], self._lengths[i, 0],
                           self._lengths[i, 1])

    def __repr__(self) -> str:
        shown = self.problems[:3]
        more = f", ... ({len(self.problems)} problems)" if len(self.problems) > 3 else ""
        return f"ProblemGenerator({shown}{more})"


def digit_row(digits: chex.Array, length: chex.Array) -> chex.Array:
    """A pad row (int8) of a number given per column (units in column ``width - 2``)."""
    width = digits.shape[0]
    col = jnp.arange(width)
    pos = (width - 2) - col
    edge = (col == 0) | (col == width - 1)
    return jnp.where(edge, jnp.int8(c.SENTINEL),
                     jnp.where((pos >= 0) & (pos < length), (digits + 1).astype(jnp.int8),
                               jnp.int8(c.BLANK)))


def empty_row(width: int) -> chex.Array:
    col = jnp.arange(width)
    return jnp.where((col == 0) | (col == width - 1), jnp.int8(c.SENTINEL), jnp.int8(c.BLANK))


def make_mulpad(a: chex.Array, b: chex.Array, len_a: chex.Array, len_b: chex.Array,
                acc: Optional[chex.Array] = None) -> MulPad:
    """The pad for operands given as per-column digits; ACC blank (zero) unless ``acc`` (a pad
    row) is given. Every pointer starts on the units column."""
    chex.assert_rank([a, b], 1)
    width = a.shape[0]
    empty = empty_row(width)
    pad = jnp.stack([digit_row(a, len_a), digit_row(b, len_b),
                     empty if acc is None else acc.astype(jnp.int8), empty, empty])
    return MulPad(pad=pad, add_pointers=jnp.full((4,), width - 2, jnp.int32),
                  b_pointer=jnp.asarray(width - 2, jnp.int32), reps=jnp.zeros((), jnp.int32),
                  ink=jnp.zeros((), jnp.uint32), len_a=jnp.asarray(len_a, jnp.int32),
                  len_b=jnp.asarray(len_b, jnp.int32))
