"""Instance generators and the cheap integer hash they draw from.

Under ``vmap`` an auto-reset wrapper computes a fresh instance for every environment at every
step (``lax.cond`` becomes ``select``), so generation sits on the hot path. Drawing a whole
instance with threefry dominated the step in the design sketch (DESIGN.md, performance notes);
our generators draw one 32-bit word from the key and expand it with an integer hash instead.
"""

from __future__ import annotations

import abc
from typing import Any, Optional, Tuple

import chex
import jax
import jax.numpy as jnp


class Generator(abc.ABC):
    """Makes a task instance (the task part of the machine state) from a key, Jumanji style.

    Subclasses store their size knobs as attributes (the env reads them back to size its
    arrays) and implement ``__call__``.
    """

    @abc.abstractmethod
    def __call__(self, key: chex.PRNGKey) -> Any:
        """Generate a task instance."""

    # Generators whose instance size can be capped at run time (a size curriculum,
    # ``npigym.agents.size_curriculum``) set ``size_range`` to their ``(min, max)`` sizes and
    # override ``sample_at_size``.
    size_range: Optional[Tuple[int, int]] = None

    def sample_at_size(self, key: chex.PRNGKey, size: chex.Array) -> Any:
        """An instance no larger than ``size`` (a traced int, clipped to ``size_range``),
        drawn as ``__call__`` draws with the largest size set to ``size``."""
        raise NotImplementedError(f"{type(self).__name__} cannot cap its instances' size")


def hash32(x: chex.Array) -> chex.Array:
    """A 32-bit integer finaliser (``lowbias32``, Chris Wellons' hash-prospector).

    Bijective on uint32 with good avalanche; ``hash32(seed ^ hash32(i))`` gives a stream of
    independent-looking words from one seed word. No maintained JAX library offers a cheap
    counter-based integer hash (jax.random is threefry/rbg, far heavier per word), hence this.
    """
    x = jnp.asarray(x, jnp.uint32)
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def hash_stream(seed: chex.Array, index: chex.Array) -> chex.Array:
    """Word ``index`` of the stream defined by ``seed`` (both uint32, broadcast together).

    SplitMix style: a Weyl sequence ``seed + (index + 1) * golden`` through the finaliser.
    """
    golden = jnp.uint32(0x9E3779B9)
    return hash32(jnp.asarray(seed, jnp.uint32)
                  + (jnp.asarray(index, jnp.uint32) + jnp.uint32(1)) * golden)


def uniform_int(word: chex.Array, low: chex.Array, high: chex.Array) -> chex.Array:
    """An int32 in ``[low, high]`` (traced bounds allowed) from a uint32 word.

    Scales the word's top 24 bits in float32 rather than taking ``word % span``: integer
    division has no SIMD form on x86, and this ran 1.4x faster inside a vmapped reset. Each
    value's probability is within ``span / 2**24`` of uniform (6e-4 relative at 10,000).
    """
    low = jnp.asarray(low, jnp.int32)
    high = jnp.asarray(high, jnp.int32)
    span = (high - low + 1).astype(jnp.float32)
    fraction = (jnp.asarray(word, jnp.uint32) >> 8).astype(jnp.float32) * (1.0 / 2**24)
    # float32 rounding can reach span itself for large spans; the clamp keeps it in range.
    return jnp.minimum(low + jnp.floor(fraction * span).astype(jnp.int32), high)


def scale16(half: chex.Array, n: int) -> chex.Array:
    """Map a 16-bit value to ``[0, n)`` by multiply-shift (``n`` static, at most 65536).

    Integer division has no SIMD form on x86, so ``word % 10`` per pad column cost more than
    the rest of a reset; this is a multiply and a shift (relative bias below n / 65536).
    """
    return ((jnp.asarray(half, jnp.uint32) * jnp.uint32(n)) >> 16).astype(jnp.int32)


_LARGEST_PRIME_32 = 4_294_967_291  # 2**32 - 5


def seed_word(key: chex.PRNGKey) -> chex.Array:
    """A uint32 seed from ``key``'s data by hashing: no threefry on the reset path.

    Works for raw (``PRNGKey``) and typed (``jax.random.key``) keys. The word is reduced modulo
    the largest 32-bit prime (the 5 words above it wrap to 0..4, a bias of 1e-9), which changes
    nothing in distribution but makes the seed a value XLA computes once: it counts an integer
    remainder as expensive and does not recompute it inside each consumer's loop, whereas the
    hash chain alone, being cheap elementwise ops, was fused into every cell of a generated
    pad and recomputed there (a vmapped Addition reset cost 1.8x more that way).
    """
    data = jax.random.key_data(key).reshape(-1).astype(jnp.uint32)
    word = hash32(data[0] ^ hash32(data[-1] ^ jnp.uint32(0x9E3779B9)))
    return word % jnp.uint32(_LARGEST_PRIME_32)


def next_key(key: chex.PRNGKey) -> chex.PRNGKey:
    """A fresh key for the next episode, derived from ``key`` by hashing (a counter-free stream).

    Auto-reset runs every step under ``vmap``; splitting with threefry there cost 1.3x of the
    whole step (benchmarks/env_throughput.py). The derived key never equals the data that
    :func:`seed_word` hashes, and keys of independent envs stay independent.
    """
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    data = jax.random.key_data(key).astype(jnp.uint32)
    flat = data.reshape(-1)
    mixed = jnp.stack([hash_stream(flat[0], flat[-1] ^ jnp.uint32(0x85EBCA6B)),
                       hash_stream(flat[-1], flat[0] ^ jnp.uint32(0xC2B2AE35))])
    new = jnp.zeros_like(flat).at[0].set(mixed[0]).at[-1].set(mixed[1]).reshape(data.shape)
    return jax.random.wrap_key_data(new, impl=jax.random.key_impl(key)) if typed else new
