"""Sorting instances: an array of small integers at the start of a fixed-width row.

Under ``vmap`` an auto-reset wrapper computes a fresh instance for every environment at every
step, so an instance costs one 32-bit word from the key, expanded with an integer hash into two
16-bit halves per pair of cells and mapped to values by multiply-shift (``scale16``): no
per-cell modulo, no per-cell threefry, no cumulative ops.
"""

from __future__ import annotations

import abc
from typing import Any, Optional, Sequence, Tuple

import chex
import jax.numpy as jnp
import numpy as np

from npigym.envs.machine.checks import check_int, check_min_max
from npigym.envs.machine.generator import (
    Generator,
    hash32,
    hash_stream,
    scale16,
    seed_word,
    uniform_int,
)
from npigym.envs.sorting import constants as c
from npigym.envs.sorting.types import SortPad

# Salt of the cells' fingerprint hash, so that it is unrelated to the hash the values come from.
_FINGERPRINT_SALT = 0x5BD1E995


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    """A size knob: a ``KnobTypeError`` (a TypeError and a ValueError) for a non-int, a
    ValueError naming it out of ``[low, high]``."""
    why = ""
    if name in ("max_length", "min_length"):
        why = "(twice the expert's worst case must fit the int32 step counter)"
    elif name == "max_value":
        why = "(values are drawn from 16-bit halves of hash words)"
    return check_int(name, value, low, high, why)


def cell_dtype(max_value: int) -> jnp.dtype:
    """The narrowest signed integer dtype holding cells ``0 .. max_value + 1``.

    int8 for digits: under ``vmap`` the row is copied by every select of the machine's step,
    so its width is memory traffic.
    """
    if max_value + 1 <= np.iinfo(np.int8).max:
        return jnp.dtype(jnp.int8)
    if max_value + 1 <= np.iinfo(np.int16).max:
        return jnp.dtype(jnp.int16)
    return jnp.dtype(jnp.int32)


class SortingGenerator(Generator, abc.ABC):
    """Base of sorting generators: ``max_length`` sizes the row, ``max_value`` the alphabet.

    Args:
        max_length: cells in the row (the longest instance), in ``[1, 8192]``.
        max_value: values are in ``[0, max_value]``, ``max_value`` in ``[1, 65535]``.
    """

    def __init__(self, max_length: int, max_value: int = c.DEFAULT_MAX_VALUE):
        self.max_length = _check_int("max_length", max_length, 1, c.MAX_LENGTH_LIMIT)
        self.max_value = _check_int("max_value", max_value, 1, c.MAX_VALUE_LIMIT)

    @property
    def dtype(self) -> jnp.dtype:
        """The cells' dtype."""
        return cell_dtype(self.max_value)


class RandomGenerator(SortingGenerator):
    """Random arrays of ``min_length`` to ``max_length`` values in ``[0, max_value]``.

    The length is uniform in ``[min_length, max_length]`` and the values are independent and
    uniform (duplicates occur), with a relative bias below ``(max_value + 1) / 65536``.

    Args:
        min_length: shortest array, at least 1.
        max_length: longest array (the row's width), at most 8192.
        max_value: largest value (default 9: digits, as in NPI), at most 65535.
    """

    def __init__(self, min_length: int = c.DEFAULT_MIN_LENGTH,
                 max_length: int = c.DEFAULT_MAX_LENGTH, max_value: int = c.DEFAULT_MAX_VALUE):
        super().__init__(max_length, max_value)
        self.min_length = _check_int("min_length", min_length, 1, c.MAX_LENGTH_LIMIT)
        check_min_max("min_length", self.min_length, "max_length", self.max_length)

    @property
    def size_range(self) -> Tuple[int, int]:
        return self.min_length, self.max_length

    def __call__(self, key: chex.PRNGKey) -> SortPad:
        return self._draw(key, self.max_length)

    def sample_at_size(self, key: chex.PRNGKey, size: chex.Array) -> SortPad:
        """An array of at most ``size`` values (traced; clipped to ``[min_length,
        max_length]``): the same draw as ``__call__`` with ``max_length`` set to ``size``."""
        return self._draw(key, jnp.clip(jnp.asarray(size, jnp.int32), self.min_length,
                                        self.max_length))

    def _draw(self, key: chex.PRNGKey, max_length: chex.Array) -> SortPad:
        seed = seed_word(key)
        length = uniform_int(hash_stream(seed, 0), self.min_length, max_length)
        # One word per pair of cells: the low halves fill the first half of the row, the high
        # halves the second (no interleave needed: every cell's value is independent).
        words = hash_stream(seed, 1 + jnp.arange((self.max_length + 1) // 2))
        halves = jnp.concatenate([words & 0xFFFF, words >> 16])[: self.max_length]
        values = scale16(halves, self.max_value + 1)
        return make_pad(values, length, self.dtype)

    def __repr__(self) -> str:
        return (f"RandomGenerator(min_length={self.min_length}, max_length={self.max_length}, "
                f"max_value={self.max_value})")


class ArrayGenerator(SortingGenerator):
    """Draws uniformly from a fixed list of arrays, e.g. ``ArrayGenerator([[3, 1, 2, 0]])``.

    For tests, docs and evaluation sets.

    Args:
        arrays: non-empty sequences of non-negative ints.
        max_length: row width; defaults to the longest array.
        max_value: the alphabet's largest value; defaults to 9 (digits) or, if larger, the
            largest value in ``arrays``.
    """

    def __init__(self, arrays: Sequence[Sequence[int]], max_length: Optional[int] = None,
                 max_value: Optional[int] = None):
        if isinstance(arrays, (str, bytes)) or not isinstance(arrays, Sequence):
            raise TypeError(f"arrays must be a sequence of arrays, not {type(arrays).__name__}")
        arrays = [list(np.asarray(a).reshape(-1).tolist()) if isinstance(a, np.ndarray)
                  else list(a) for a in arrays]
        if not arrays:
            raise ValueError("ArrayGenerator needs at least one array")
        for a in arrays:
            if not a:
                raise ValueError("ArrayGenerator arrays must not be empty")
            for x in a:
                if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0:
                    raise ValueError(f"array values must be non-negative ints, got {x!r} in {a}")
        longest = max(len(a) for a in arrays)
        largest = max(max(a) for a in arrays)
        super().__init__(longest if max_length is None else max_length,
                         max(c.DEFAULT_MAX_VALUE, largest) if max_value is None else max_value)
        if longest > self.max_length:
            raise ValueError(f"an array has {longest} values but max_length={self.max_length}")
        if largest > self.max_value:
            raise ValueError(f"an array holds {largest} but max_value={self.max_value}")
        self.arrays = [[int(x) for x in a] for a in arrays]
        values = np.zeros((len(arrays), self.max_length), np.int32)
        for i, a in enumerate(self.arrays):
            values[i, : len(a)] = a
        self._values = jnp.asarray(values)
        self._lengths = jnp.asarray([len(a) for a in self.arrays], jnp.int32)

    def __call__(self, key: chex.PRNGKey) -> SortPad:
        i = uniform_int(seed_word(key), 0, len(self.arrays) - 1)
        return make_pad(self._values[i], self._lengths[i], self.dtype)

    def __repr__(self) -> str:
        shown = self.arrays[:3]
        more = f", ... ({len(self.arrays)} arrays)" if len(self.arrays) > 3 else ""
        return (f"ArrayGenerator({shown}{more}, max_length={self.max_length}, "
                f"max_value={self.max_value})")


def fingerprint(cells: chex.Array) -> chex.Array:
    """An order-independent uint32 hash of the cells: the sum of a hash of each cell.

    Equal for permutations; for a different multiset equal with probability about 2**-32. A
    histogram would be exact but costs O(length * values) in every reset under ``vmap`` and a
    sorted copy O(length log length); this is O(length) elementwise work and one sum.
    """
    return jnp.sum(hash32(cells.astype(jnp.uint32) ^ jnp.uint32(_FINGERPRINT_SALT)),
                   dtype=jnp.uint32)


def make_pad(values: chex.Array, length: chex.Array, dtype: jnp.dtype) -> SortPad:
    """The pad holding ``values[:length]`` (values beyond ``length`` are ignored), pointers at
    the start."""
    chex.assert_rank(values, 1)
    cells = jnp.where(jnp.arange(values.shape[0]) < length, values + 1, c.BLANK).astype(dtype)
    return SortPad(
        cells=cells,
        pointers=jnp.zeros((c.NUM_POINTERS,), jnp.int32),
        length=jnp.asarray(length, jnp.int32),
        fingerprint=fingerprint(cells),
        inversions_removed=jnp.zeros((), jnp.int32),
    )
