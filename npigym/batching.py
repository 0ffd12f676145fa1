"""Batch-level branches that stay branches under an outer ``jax.vmap``.

Training vmaps whole agents over seeds (``jax.vmap(trainer.train)``) and sweeps over
hyperparameter settings. Under ``vmap`` a ``lax.cond`` whose predicate is batched becomes a
``select`` that runs *both* branches, so a branch that skips expensive work in most steps
(a reset of every env, a forward pass for truncated episodes) runs that work in every step
once the agent is vmapped. Training with one seed still pays it: the seed axis is there.

:func:`cond_any` is a ``lax.cond`` for the common case where the expensive branch is right
for every element and the cheap one only for the elements whose predicate is false. Under
``vmap`` it takes the expensive branch for the whole batch if any element needs it, else the
cheap one, so the result is the same as the per-element ``cond``'s and the cost is one
branch. JAX has no such primitive (``jax.lax.cond`` documents the ``select``); it is built on
``jax.custom_batching.custom_vmap``, which lets a function choose its own batching rule.

``custom_vmap`` functions support forward-mode but not reverse-mode differentiation with
respect to their operands; callers pass data (stop-gradiented where needed).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import custom_batching


def broadcast_unbatched(axis_size: int, in_batched: Any, tree: Any) -> Any:
    """``tree`` with a leading axis of ``axis_size`` on every leaf: the leaves that
    ``in_batched`` (a matching tree of bools, as a ``custom_vmap`` rule receives it) marks
    unbatched are broadcast."""
    return jax.tree.map(
        lambda x, batched: x if batched else jnp.broadcast_to(x, (axis_size, *jnp.shape(x))),
        tree, in_batched)


def cond_any(pred: Any, true_fn: Callable[[Any], Any], false_fn: Callable[[Any], Any],
             operand: Any) -> Any:
    """``jax.lax.cond(pred, true_fn, false_fn, operand)``, one branch per batch under ``vmap``.

    Contract: ``true_fn(operand)`` is the right answer whatever ``pred``; ``false_fn(operand)``
    is a cheaper computation of the same answer, valid only where ``pred`` is false. Under
    ``vmap`` (nested any number of times) the batch runs ``true_fn`` if any element's
    ``pred`` holds, else ``false_fn``: elementwise the results are the ``cond``'s.

    Args:
        pred: a boolean scalar (per batch element under ``vmap``).
        true_fn, false_fn: functions of ``operand`` with the same output structure.
        operand: a pytree of arrays; not differentiable in reverse mode (see the module).
    """

    @custom_batching.custom_vmap
    def branch(pred, operand):
        return jax.lax.cond(pred, true_fn, false_fn, operand)

    @branch.def_vmap
    def take_one_branch_for_the_batch(axis_size, in_batched, pred, operand):
        pred_batched, operand_batched = in_batched
        operand = broadcast_unbatched(axis_size, operand_batched, operand)
        pred = jnp.any(pred) if pred_batched else pred
        # A call of cond_any itself, so that under a further outer vmap (seeds inside a
        # sweep) its rule reduces that axis too.
        out = cond_any(pred, jax.vmap(true_fn), jax.vmap(false_fn), operand)
        return out, jax.tree.map(lambda _: True, out)

    return branch(pred, operand)
