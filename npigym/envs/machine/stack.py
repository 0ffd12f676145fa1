"""Pure functions on the fixed-depth call stack (no Python branching on traced values).

A machine step does one of: count a call in the top frame (a primitive), push a frame (a call),
pop one (RETURN), or nothing (an invalid action). Under ``vmap`` every branch is computed and
then selected, so :func:`update` applies whichever happened in one elementwise pass over the
few frames instead of building each alternative stack and selecting between them.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp

from npigym.envs.machine.library import NUM_ARGS
from npigym.envs.machine.types import CallStack, Frame


def new_stack(max_depth: int, root: int, snapshot: Any) -> CallStack:
    """A stack holding only the root program's frame, called with zero arguments."""
    return CallStack(
        program=jnp.zeros((max_depth,), jnp.int32).at[0].set(root),
        args=jnp.zeros((max_depth, NUM_ARGS), jnp.int32),
        steps=jnp.zeros((max_depth,), jnp.int32),
        snapshot=jax.tree.map(
            lambda x: jnp.broadcast_to(x, (max_depth, *jnp.shape(x))), snapshot),
        depth=jnp.zeros((), jnp.int32),
    )


def top(stack: CallStack) -> Frame:
    """The frame being executed."""
    # Indexing by depth is a gather under vmap. A one-hot sum or a where-chain over the levels
    # instead made a random Addition rollout of 4,096 envs 1.24-1.26x slower on XLA:CPU
    # (benchmarks/ab_rollout.py).
    d = stack.depth
    return Frame(
        program=stack.program[d],
        args=stack.args[d],
        steps=stack.steps[d],
        snapshot=jax.tree.map(lambda x: x[d], stack.snapshot),
    )


def update(stack: CallStack, *, count: chex.Array, push: chex.Array, pop: chex.Array,
           program: chex.Array, args: chex.Array, snapshot: Any) -> CallStack:
    """The stack after one machine step.

    Args:
        stack: the stack before the step.
        count: the top frame made a call (a primitive, a program or a builtin).
        push: the call opens a frame for ``program(args)`` above the top (implies ``count``);
            the caller must have checked there is room (``depth + 1 < max_depth``).
        pop: the top frame returned (the root frame stays: its RETURN ends the episode).
        program, args, snapshot: the pushed frame's program, arguments and task snapshot.
    """
    chex.assert_shape(args, (NUM_ARGS,))
    count, push, pop = (jnp.asarray(x, bool) for x in (count, push, pop))
    d = stack.depth
    level = jnp.arange(stack.program.shape[0])
    opened = push & (level == d + 1)
    steps = stack.steps + ((level == d) & count).astype(jnp.int32)

    def put(old: chex.Array, new: chex.Array) -> chex.Array:
        return jnp.where(opened.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)

    return CallStack(
        program=put(stack.program, program),
        args=put(stack.args, args),
        steps=put(steps, 0),
        snapshot=jax.tree.map(put, stack.snapshot, snapshot),
        depth=d + push.astype(jnp.int32) - (pop & (d > 0)).astype(jnp.int32),
    )


def tree_where(condition: chex.Array, x: Any, y: Any) -> Any:
    """``x`` where ``condition`` holds, else ``y``, leaf by leaf (a scalar condition)."""
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), x, y)
