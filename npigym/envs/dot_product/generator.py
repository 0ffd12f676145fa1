"""Dot-product instances: two vectors of multi-digit numbers."""

from __future__ import annotations

import abc
from typing import Sequence

import chex
import jax.numpy as jnp
import numpy as np

from npigym.envs.dot_product import constants as c
from npigym.envs.dot_product.types import DotPad
from npigym.envs.machine.checks import check_int, check_step_limit
from npigym.envs.machine.generator import Generator, hash_stream, scale16, seed_word, uniform_int
from npigym.envs.multiplication import constants as mc
from npigym.envs.multiplication.generator import digit_row, empty_row


def _check_int(name: str, value: int, low: int, high: int) -> int:
    return check_int(name, value, low, high)


def worst_case_step_limit(max_length: int, max_digits: int) -> int:
    """``task.default_step_limit`` of the largest instance, in Python ints (the jitted one is
    int32: this is how a generator knows it fits)."""
    size = 2 * max_digits + 1
    per_addition = mc.ADD_STEPS_PER_COLUMN * (size + 1) + 1 + 2
    per_pair = max_digits * (9 * per_addition + 1) + 1 + 2
    return 2 * (max_length * per_pair + 1)


class DotProductGenerator(Generator, abc.ABC):
    """Base of dot-product generators: ``max_length`` pairs of at most ``max_digits`` digits.

    The pad has ``2 * max_digits + 5`` columns: room for the sum of up to 9 products. The
    default step limit of the largest instance must fit int32 (``max_digits`` up to 2,063 for
    one pair, 687 for 9).
    """

    def __init__(self, max_length: int, max_digits: int):
        self.max_length = _check_int("max_length", max_length, 1, c.MAX_PAIRS)
        self.max_digits = _check_int("max_digits", max_digits, 1, 30_000)
        check_step_limit("max_length and max_digits",
                         worst_case_step_limit(self.max_length, self.max_digits),
                         f"{self.max_length} pair{'s' * (self.max_length != 1)} of "
                         f"{self.max_digits:,}-digit numbers")

    @property
    def width(self) -> int:
        return 2 * self.max_digits + c.EXTRA_COLUMNS


class RandomGenerator(DotProductGenerator):
    """Vectors of ``min_length..max_length`` pairs whose numbers have ``min_digits..max_digits``
    digits (each length uniform, digits uniform with a leading 1-9; one threefry word per
    instance, expanded with an integer hash)."""

    def __init__(self, min_length: int = 2, max_length: int = 3, min_digits: int = 1,
                 max_digits: int = 2):
        super().__init__(max_length, max_digits)
        self.min_length = _check_int("min_length", min_length, 1, self.max_length)
        self.min_digits = _check_int("min_digits", min_digits, 1, self.max_digits)

    def __call__(self, key: chex.PRNGKey) -> DotPad:
        seed = seed_word(key)
        k = uniform_int(hash_stream(seed, 0), self.min_length, self.max_length)
        n, w = self.max_length, self.width
        lengths = uniform_int(hash_stream(seed, 1 + jnp.arange(2 * n)), self.min_digits,
                              self.max_digits).reshape(2, n)
        words = hash_stream(seed, 1 + 2 * n + jnp.arange(n * w)).reshape(n, w)
        pos = (w - 2) - jnp.arange(w)

        def numbers(half: chex.Array, length: chex.Array) -> chex.Array:
            digits = jnp.where(pos[None] == length[:, None] - 1, 1 + scale16(half, 9),
                               scale16(half, 10))
            return jnp.stack([digit_row(digits[i], length[i]) for i in range(n)])

        x = numbers(words & 0xFFFF, lengths[0])
        y = numbers(words >> 16, lengths[1])
        return make_dotpad(x, y, lengths[0], lengths[1], k)

    def __repr__(self) -> str:
        return (f"RandomGenerator(min_length={self.min_length}, max_length={self.max_length}, "
                f"min_digits={self.min_digits}, max_digits={self.max_digits})")


class VectorGenerator(DotProductGenerator):
    """Always the same pair of vectors, e.g. ``VectorGenerator([12, 7], [3, 45])``."""

    def __init__(self, x: Sequence[int], y: Sequence[int]):
        x, y = list(x), list(y)
        if not x or len(x) != len(y):
            raise ValueError("VectorGenerator needs two vectors of the same, non-zero length")
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                   for v in x + y):
            raise ValueError("the vectors' entries must be positive ints")
        super().__init__(len(x), max(len(str(v)) for v in x + y))
        w = self.width
        rows, lengths = np.zeros((2, len(x), w), np.int32), np.zeros((2, len(x)), np.int32)
        for v, vector in enumerate((x, y)):
            for i, number in enumerate(vector):
                s = str(int(number))
                lengths[v, i] = len(s)
                rows[v, i, w - 1 - len(s): w - 1] = [int(ch) for ch in s]
        self.x, self.y = x, y
        self._rows, self._lengths = rows, lengths

    def __call__(self, key: chex.PRNGKey) -> DotPad:
        del key
        n = len(self.x)
        x = jnp.stack([digit_row(jnp.asarray(self._rows[0, i]), self._lengths[0, i])
                       for i in range(n)])
        y = jnp.stack([digit_row(jnp.asarray(self._rows[1, i]), self._lengths[1, i])
                       for i in range(n)])
        return make_dotpad(x, y, jnp.asarray(self._lengths[0]), jnp.asarray(self._lengths[1]), n)

    def __repr__(self) -> str:
        return f"VectorGenerator({self.x}, {self.y})"


def make_dotpad(x: chex.Array, y: chex.Array, len_x: chex.Array, len_y: chex.Array,
                num_pairs: chex.Array) -> DotPad:
    """The state for vectors given as pad rows; ACC zero (blank), every pointer on the units
    column, the first pair current."""
    width = x.shape[1]
    empty = empty_row(width)
    return DotPad(x=x, y=y, len_x=jnp.asarray(len_x, jnp.int32),
                  len_y=jnp.asarray(len_y, jnp.int32),
                  num_pairs=jnp.asarray(num_pairs, jnp.int32), pair=jnp.zeros((), jnp.int32),
                  work=jnp.stack([empty, empty, empty]),
                  add_pointers=jnp.full((4,), width - 2, jnp.int32),
                  b_pointer=jnp.asarray(width - 2, jnp.int32), reps=jnp.zeros((), jnp.int32),
                  ink=jnp.zeros((), jnp.uint32))
