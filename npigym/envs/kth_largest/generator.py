"""KthLargest instances: a Sorting instance (any ``SortingGenerator``) and a rank ``k``."""

from __future__ import annotations

from typing import Any, Optional

import chex
import jax.numpy as jnp

from npigym.envs.kth_largest import constants as c
from npigym.envs.kth_largest.types import KthPad
from npigym.envs.machine.checks import KnobTypeError, is_int
from npigym.envs.machine.generator import hash32, seed_word, uniform_int
from npigym.envs.sorting import constants as sc
from npigym.envs.sorting.generator import ArrayGenerator, RandomGenerator, SortingGenerator
from npigym.envs.sorting.types import SortPad


def shortest_length(generator: SortingGenerator) -> Optional[int]:
    """The shortest array ``generator`` draws, when it says (``RandomGenerator``,
    ``ArrayGenerator``); ``None`` for other generators."""
    if isinstance(generator, RandomGenerator):
        return generator.min_length
    if isinstance(generator, ArrayGenerator):
        return min(len(a) for a in generator.arrays)
    return None


def check_k(k: Any, generator: SortingGenerator) -> Optional[int]:
    """``k`` validated against the arrays ``generator`` draws: ``None`` or an int in
    ``[1, shortest length]`` (``[1, max_length]`` when the shortest is unknown)."""
    if k is None:
        return None
    if not is_int(k):
        raise KnobTypeError(f"k must be None (random, uniform in [1, length]) or an int, "
                        f"not {type(k).__name__} ({k!r})")
    shortest = shortest_length(generator)
    high = generator.max_length if shortest is None else shortest
    if not 1 <= k <= high:
        what = (f"the shortest array {generator!r} draws has {high} values" if shortest
                is not None else f"arrays have at most max_length={high} values")
        raise ValueError(f"k must be in [1, {high}] ({what}), not {k}")
    return int(k)


class KthGenerator(SortingGenerator):
    """An array from ``base`` and a rank ``k``: fixed, or uniform in ``[1, length]``.

    Args:
        base: draws the array (``RandomGenerator``, ``ArrayGenerator`` or your own
            ``SortingGenerator``); its ``max_length`` and ``max_value`` are this generator's.
        k: ``None`` (the default): uniform in ``[1, length]`` per instance; an int: that rank
            for every instance, at most the shortest array's length (checked for
            ``RandomGenerator`` and ``ArrayGenerator``; for other generators clipped to each
            instance's length).
    """

    def __init__(self, base: SortingGenerator, k: Optional[int] = None):
        if isinstance(base, KthGenerator) or not isinstance(base, SortingGenerator):
            raise TypeError("base must be a SortingGenerator (RandomGenerator, ArrayGenerator), "
                            f"not {type(base).__name__}")
        super().__init__(base.max_length, base.max_value)
        self.base = base
        self.k = check_k(k, base)

    @property
    def dtype(self) -> jnp.dtype:
        return self.base.dtype

    def __call__(self, key: chex.PRNGKey) -> KthPad:
        pad = self.base(key)
        if self.k is None:
            # A word of its own (the base hashes the same seed through other constants).
            word = hash32(seed_word(key) ^ jnp.uint32(c.K_SALT))
            k = uniform_int(word, 1, pad.length)
        else:
            k = jnp.minimum(jnp.asarray(self.k, jnp.int32), pad.length)
        return with_k(pad, k)

    def __repr__(self) -> str:
        return f"KthGenerator({self.base!r}, k={self.k!r})"


def with_k(pad: SortPad, k: chex.Array) -> KthPad:
    """``pad`` with rank ``k``."""
    return KthPad(cells=pad.cells, pointers=pad.pointers, length=pad.length,
                  fingerprint=pad.fingerprint, inversions_removed=pad.inversions_removed,
                  k=jnp.asarray(k, jnp.int32))


def make_generator(min_length: Optional[int], max_length: Optional[int],
                   max_value: Optional[int], k: Optional[int],
                   generator: Optional[SortingGenerator]) -> KthGenerator:
    """The env's generator from its knobs: Sorting's defaults (lengths 2-10, or ``max_length``
    if shorter; digits) for the array, or ``generator``, with ``k``.

    Raises:
        ValueError: both size knobs and a generator; ``k`` and a ``KthGenerator`` (which has
            its own); ``k`` out of range.
        TypeError: a generator that is not a ``SortingGenerator``; ``k`` not an int (a
            ``KnobTypeError``, also a ValueError).
    """
    if generator is None:
        max_length = sc.DEFAULT_MAX_LENGTH if max_length is None else max_length
        if min_length is None:  # Sorting's default, unless max_length asks for shorter arrays
            min_length = sc.DEFAULT_MIN_LENGTH
            if is_int(max_length) and 1 <= max_length < min_length:
                min_length = max_length
        generator = RandomGenerator(
            min_length, max_length, sc.DEFAULT_MAX_VALUE if max_value is None else max_value)
    elif min_length is not None or max_length is not None or max_value is not None:
        raise ValueError("pass either min_length/max_length/max_value or a generator, not "
                         f"both (the generator {generator!r} sets them)")
    if isinstance(generator, KthGenerator):
        if k is not None:
            raise ValueError(f"pass k or a KthGenerator, not both (the generator {generator!r} "
                             "sets k)")
        return generator
    if not isinstance(generator, SortingGenerator):
        raise TypeError("generator must be a SortingGenerator or a KthGenerator, "
                        f"not {type(generator).__name__}")
    return KthGenerator(generator, k)
