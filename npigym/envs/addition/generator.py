"""Addition instances: two operands written right-aligned on a scratchpad."""

from __future__ import annotations

import abc
from typing import Optional, Sequence, Tuple

import chex
import jax.numpy as jnp
import numpy as np

from npigym.envs.addition import constants as c
from npigym.envs.addition.types import Scratchpad
from npigym.envs.machine.generator import (
    Generator,
    hash_stream,
    scale16,
    seed_word,
    uniform_int,
)

# The largest max_digits: the step limit, 2 * (EXPERT_STEPS_PER_COLUMN * (n + 1) + 1), must fit
# int32 (past ~77 M digits it wraps and episodes end after one step), and a pad of 10 M digits
# is already ~160 MB per env; beyond that a size is a typo, not an experiment.
MAX_DIGITS = min(10_000_000, (np.iinfo(np.int32).max // 2 - 1) // c.EXPERT_STEPS_PER_COLUMN - 1)


class AdditionGenerator(Generator, abc.ABC):
    """Base of addition generators: ``max_digits`` sizes the pad (``max_digits + 4`` columns),
    at most :data:`MAX_DIGITS`."""

    def __init__(self, max_digits: int):
        if isinstance(max_digits, bool) or not isinstance(max_digits, (int, np.integer)) \
                or max_digits < 1:
            raise ValueError(f"max_digits must be a positive int, not {max_digits!r}")
        if max_digits > MAX_DIGITS:
            raise ValueError(f"max_digits must be at most {MAX_DIGITS:,} (the step limit must "
                             f"fit int32 and the pad memory), not {max_digits:,}")
        self.max_digits = int(max_digits)

    @property
    def width(self) -> int:
        return self.max_digits + c.EXTRA_COLUMNS


class RandomGenerator(AdditionGenerator):
    """Random problems of ``min_digits`` to ``max_digits`` digits.

    The size ``n`` is uniform in ``[min_digits, max_digits]``; one operand has ``n`` digits and
    the other a uniform length in ``[1, n]`` (which one is random); digits are uniform, with no
    leading zeros. An instance costs one 32-bit word from threefry, expanded with an integer hash.

    ``nines`` is a difficulty knob for training distributions: each digit is 9 with this
    probability and otherwise uniform over the other digits (1-8 for a leading digit, 0-8
    elsewhere). Carries run through 9s, so more nines mean longer carry chains and more of the
    rarest column, 9 + 9 + a carry (the only one whose sum is 19: 0.16 % of the columns of
    uniform 1-5-digit instances, 1.7 % at ``nines=0.3``). ``None`` (the default) is the
    uniform distribution above.
    """

    def __init__(self, min_digits: int = 1, max_digits: int = 10,
                 nines: Optional[float] = None):
        super().__init__(max_digits)
        if isinstance(min_digits, bool) or not isinstance(min_digits, (int, np.integer)) \
                or not 1 <= min_digits <= max_digits:
            raise ValueError(f"min_digits must be an int in [1, max_digits={max_digits}], "
                             f"not {min_digits!r}")
        if nines is not None and (isinstance(nines, bool)
                                  or not isinstance(nines, (int, float, np.floating))
                                  or not 0.0 <= nines <= 1.0):
            raise ValueError(f"nines must be a probability in [0, 1] or None, not {nines!r}")
        self.min_digits = int(min_digits)
        self.nines = None if nines is None else float(nines)

    @property
    def size_range(self) -> Tuple[int, int]:
        return self.min_digits, self.max_digits

    def __call__(self, key: chex.PRNGKey) -> Scratchpad:
        return self._draw(key, self.max_digits)

    def sample_at_size(self, key: chex.PRNGKey, size: chex.Array) -> Scratchpad:
        """An instance of at most ``size`` digits (traced; clipped to ``[min_digits,
        max_digits]``): the same draw as ``__call__`` with ``max_digits`` set to ``size``."""
        return self._draw(key, jnp.clip(jnp.asarray(size, jnp.int32), self.min_digits,
                                        self.max_digits))

    def _draw(self, key: chex.PRNGKey, max_digits: chex.Array) -> Scratchpad:
        seed = seed_word(key)
        n = uniform_int(hash_stream(seed, 0), self.min_digits, max_digits)
        m = uniform_int(hash_stream(seed, 1), 1, n)
        swap = (hash_stream(seed, 2) & 1) == 1
        len_a, len_b = jnp.where(swap, m, n), jnp.where(swap, n, m)
        # One word per column: its low half gives IN1's digit, its high half IN2's; an
        # operand's leading digit is 1..9 (no leading zeros).
        words = hash_stream(seed, 3 + jnp.arange(self.width))
        low, high = words & 0xFFFF, words >> 16
        pos = _digit_positions(self.width)
        lead_a, lead_b = (pos == len_a - 1) & (len_a > 1), (pos == len_b - 1) & (len_b > 1)
        if self.nines is None:  # static: the uniform default draws no extra words
            a = jnp.where(lead_a, 1 + scale16(low, 9), scale16(low, 10))
            b = jnp.where(lead_b, 1 + scale16(high, 9), scale16(high, 10))
        else:
            # A second word per column decides the 9s; the first draws among the other digits.
            coins = hash_stream(seed, 3 + self.width + jnp.arange(self.width))
            cut = jnp.uint32(min(round(self.nines * 65536), 65536))
            a = jnp.where((coins & 0xFFFF) < cut, 9,
                          jnp.where(lead_a, 1 + scale16(low, 8), scale16(low, 9)))
            b = jnp.where((coins >> 16) < cut, 9,
                          jnp.where(lead_b, 1 + scale16(high, 8), scale16(high, 9)))
        return make_scratchpad(a, b, len_a, len_b)

    def __repr__(self) -> str:
        nines = "" if self.nines is None else f", nines={self.nines}"
        return (f"RandomGenerator(min_digits={self.min_digits}, max_digits={self.max_digits}"
                f"{nines})")


class ProblemGenerator(AdditionGenerator):
    """Draws uniformly from a fixed list of problems, e.g. ``ProblemGenerator([(96, 125)])``.

    Args:
        problems: pairs of non-negative ints.
        max_digits: pad size; defaults to the most digits among the operands.
    """

    def __init__(self, problems: Sequence[Tuple[int, int]], max_digits: Optional[int] = None):
        problems = [tuple(p) for p in problems]
        if not problems:
            raise ValueError("ProblemGenerator needs at least one problem")
        for p in problems:
            if len(p) != 2 or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool)
                                      and x >= 0 for x in p):
                raise ValueError(f"problems must be pairs of non-negative ints, got {p!r}")
        longest = max(len(str(x)) for p in problems for x in p)
        super().__init__(longest if max_digits is None else max_digits)
        if longest > self.max_digits:
            raise ValueError(f"a problem has {longest} digits but max_digits={self.max_digits}")
        self.problems = problems
        digits = np.zeros((len(problems), 2, self.width), np.int32)
        lengths = np.zeros((len(problems), 2), np.int32)
        for i, pair in enumerate(problems):
            for j, x in enumerate(pair):
                s = str(int(x))
                lengths[i, j] = len(s)
                # Units digit in column width - 2, as _digit_positions lays them out.
                digits[i, j, self.width - 1 - len(s): self.width - 1] = [int(ch) for ch in s]
        self._digits = jnp.asarray(digits)
        self._lengths = jnp.asarray(lengths)

    def __call__(self, key: chex.PRNGKey) -> Scratchpad:
        i = uniform_int(seed_word(key), 0, len(self.problems) - 1)
        a, b = self._digits[i, 0], self._digits[i, 1]
        return make_scratchpad(a, b, self._lengths[i, 0], self._lengths[i, 1])

    def __repr__(self) -> str:
        shown = self.problems[:3]
        more = f", ... ({len(self.problems)} problems)" if len(self.problems) > 3 else ""
        return f"ProblemGenerator({shown}{more}, max_digits={self.max_digits})"


def _digit_positions(width: int) -> chex.Array:
    """The decimal position of each column (0 for the units column ``width - 2``)."""
    return (width - 2) - jnp.arange(width)


def make_scratchpad(a: chex.Array, b: chex.Array, len_a: chex.Array, len_b: chex.Array
                    ) -> Scratchpad:
    """The scratchpad for operands given as per-column digits (units in column ``width - 2``).

    Digits outside an operand's length are ignored. No answer is stored: the task checks OUT
    column by column (``task.check_sum``), which keeps a reset free of the carry chain (and
    the state one leaf smaller: an answer row compared at ADD's RETURN made a random rollout
    1.05x slower even with its carry chain left out of the reset, 1.08x with it). The
    rows are built in int8 and stacked, so the empty CARRY and OUT rows draw no digits (one
    ``where`` over the whole grid computed both operands' digits in all four rows: 1.3x
    slower; casting int32 rows at the end: 1.8x slower). This runs at every step under a
    vmapped auto-reset.
    """
    chex.assert_rank([a, b], 1)
    width = a.shape[0]
    col = jnp.arange(width)
    pos = _digit_positions(width)
    edge = (col == 0) | (col == width - 1)

    def operand_row(digits: chex.Array, length: chex.Array) -> chex.Array:
        return jnp.where(edge, jnp.int8(c.SENTINEL),
                         jnp.where((pos >= 0) & (pos < length), (digits + 1).astype(jnp.int8),
                                   jnp.int8(c.BLANK)))

    empty_row = jnp.where(edge, jnp.int8(c.SENTINEL), jnp.int8(c.BLANK))
    pad = jnp.stack([operand_row(a, len_a), operand_row(b, len_b), empty_row, empty_row])
    return Scratchpad(
        pad=pad,
        pointers=jnp.full((c.NUM_ROWS,), width - 2, jnp.int32),
        num_digits=jnp.maximum(len_a, len_b).astype(jnp.int32),
        ink=jnp.zeros((), jnp.uint32),
    )
