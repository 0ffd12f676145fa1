"""Auto-reset that keeps the real final observation, with a cheap key for the next episode.

:class:`AutoResetWrapper` auto-resets one env (``jax.vmap`` it for a batch);
:class:`VmapAutoResetWrapper` is the batched form that resets only the envs that ended.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
from jax import custom_batching
from jumanji.env import Environment
from jumanji.types import TimeStep
from jumanji.wrappers import VmapWrapper, Wrapper

from npigym.batching import broadcast_unbatched
from npigym.envs.machine.generator import next_key


class AutoResetWrapper(Wrapper):
    """Resets an episode as soon as it ends, in the same step.

    On the step that ends an episode (``timestep.last()``), the returned state and observation
    are those of a fresh episode, while the step type (LAST), reward, discount and extras are
    the ending step's, and ``extras["next_obs"]`` holds the real final observation (every step,
    so the pytree is the same each step). Learners bootstrap from ``next_obs`` on truncation.

    This is ``jumanji.wrappers.AutoResetWrapper(env, next_obs_in_extras=True)`` except for the
    next episode's key. Jumanji splits ``state.key`` with threefry, which XLA:CPU runs as a
    rolled loop, and under ``vmap`` the reset branch runs at every step; here the key is
    derived with an integer hash (``npigym.envs.machine.generator.next_key``).
    Works with any Jumanji environment whose state has a ``key``. An env whose state holds
    something that must outlive the episode (a curriculum's weights) defines
    ``next_episode(state, key)``, which is then called instead of ``reset(key)``.
    """

    def __init__(self, env: Environment):
        super().__init__(env)

    def reset(self, key: chex.PRNGKey) -> Tuple[chex.ArrayTree, TimeStep]:
        state, timestep = self._env.reset(key)
        return state, timestep.replace(extras={**timestep.extras,
                                               "next_obs": timestep.observation})

    def step(self, state: chex.ArrayTree, action: chex.Array) -> Tuple[chex.ArrayTree, TimeStep]:
        state, timestep = self._env.step(state, action)
        extras = {**timestep.extras, "next_obs": timestep.observation}

        def reset_episode(state: chex.ArrayTree) -> Tuple[chex.ArrayTree, chex.ArrayTree]:
            reset_state, reset_timestep = reset_after(self._env, state)
            return reset_state, reset_timestep.observation

        def keep(state: chex.ArrayTree) -> Tuple[chex.ArrayTree, chex.ArrayTree]:
            return state, timestep.observation

        state, observation = jax.lax.cond(timestep.last(), reset_episode, keep, state)
        return state, timestep.replace(observation=observation, extras=extras)


def reset_after(env: Environment, state: chex.ArrayTree) -> Tuple[chex.ArrayTree, TimeStep]:
    """The episode that follows ``state``'s: ``env.next_episode(state, key)`` where the env
    defines it, else ``env.reset(key)``, with the key derived from ``state.key``."""
    key = next_key(state.key)
    next_episode = getattr(env, "next_episode", None)
    return next_episode(state, key) if next_episode is not None else env.reset(key)


def default_resets_per_pass(num_envs: int) -> int:
    """An eighth of the batch (at least 1): above the fraction of envs that end per step in
    most tasks, so the fast path's small batch usually holds them all."""
    return max(1, num_envs // 8)


class VmapAutoResetWrapper(VmapWrapper):
    """A batch of environments with auto-reset, resetting only the environments that ended.

    ``reset(keys)`` takes one key per environment (shape ``(num_envs, ...)``); ``step(state,
    action)`` takes and returns batched states and timesteps, like
    ``jumanji.wrappers.VmapAutoResetWrapper``. The results are those of
    ``jax.vmap(AutoResetWrapper(env).step)`` bit for bit (same next-episode keys, same
    ``extras["next_obs"]``); only the cost differs.

    Under ``vmap`` the per-env auto-reset computes a fresh episode for *every* env at every step
    and then selects, because a per-env ``lax.cond`` becomes a ``select``; for the program
    machine that tripled the cost of a step. Here the envs whose episode ended are gathered
    (``jnp.nonzero`` with a static size), reset as one small batch and scattered back. The
    static size is the smallest of ``resets_per_pass``, twice that, four times... (below the
    batch size) that holds every ended env; in a step where more ended, every env computes a
    reset and the ended ones take it (the per-env wrapper's cost, paid in that step only), and
    in a step where none ended nothing is reset. One ``lax.switch`` on the number of ended envs
    picks among these, so any number of endings is handled exactly. (With one pass size, a
    subprogram curriculum, whose episodes are short, took the reset of every env in most
    steps: its resets run the expert. The doubling sizes made an ``addition-hierarchical``
    training call at its initial parameters 1.48x faster: 103K against 70K env steps/s.)

    Why one branch on the count rather than a loop of passes until none is pending: on
    XLA:CPU, a loop (or a branch) over the state decided *after* the first pass made a random
    Addition rollout of 4,096 envs 1.4x slower (52 ms against 37 ms per 100 steps), even
    though the loop ran in 1 step of 100; a branch on the count, which is known as soon as the
    step is, cost nothing measurable against one unconditional pass.

    Under an outer ``vmap`` (training vmaps the agent over seeds, even one seed) that branch
    would itself become a ``select`` and every step would pay both paths: a hierarchical
    Addition training call ran 1.6x slower vmapped over 1 seed than unvmapped. So the branch
    is a ``jax.custom_batching.custom_vmap`` whose batching rule folds the outer axis into the
    batch (each row's next episode depends on that row alone) and branches once on the count
    over all of it, with pass sizes scaled by the outer size.

    Args:
        env: an unbatched Jumanji environment whose state has a ``key``.
        resets_per_pass: the smallest pass size (:func:`pass_sizes`); ``None`` (the default)
            is :func:`default_resets_per_pass` of the batch size.
    """

    def __init__(self, env: Environment, resets_per_pass: Optional[int] = None):
        super().__init__(env)
        if resets_per_pass is not None and (
                isinstance(resets_per_pass, bool) or not isinstance(resets_per_pass, int)
                or resets_per_pass < 1):
            raise ValueError(f"resets_per_pass must be a positive int or None, "
                             f"not {resets_per_pass!r}")
        self.resets_per_pass = resets_per_pass

    def pass_size(self, num_envs: int) -> int:
        """The smallest pass size, for a batch of ``num_envs``."""
        return min(self.resets_per_pass or default_resets_per_pass(num_envs), num_envs)

    def reset(self, key: chex.PRNGKey) -> Tuple[chex.ArrayTree, TimeStep]:
        return jax.vmap(AutoResetWrapper(self._env).reset)(key)

    def step(self, state: chex.ArrayTree, action: chex.Array) -> Tuple[chex.ArrayTree, TimeStep]:
        state, timestep = jax.vmap(self._env.step)(state, action)
        extras = {**timestep.extras, "next_obs": timestep.observation}
        ended = timestep.last()
        reset = reset_ended(self._env, self.pass_size(ended.shape[0]))
        state, observation = reset(state, timestep.observation, ended)
        return state, timestep.replace(observation=observation, extras=extras)


def pass_sizes(size: int, num_envs: int) -> Tuple[int, ...]:
    """The sizes of :func:`reset_ended`'s small passes: ``size`` doubled while below
    ``num_envs`` (a step with more endings than the largest resets every env)."""
    sizes = [max(1, min(size, num_envs))]
    while sizes[-1] * 2 < num_envs:
        sizes.append(sizes[-1] * 2)
    return tuple(sizes)


def reset_ended(env: Environment, size: int) -> Callable[..., Tuple[chex.ArrayTree, Any]]:
    """``reset(state, observation, ended) -> (state, observation)`` for a batch of ``env``:
    the rows where ``ended`` holds replaced by their next episode's (:func:`reset_after`).

    One branch on the number of ended rows: none, one pass over the smallest of
    :func:`pass_sizes` that holds them all (gathered, reset, scattered back), or a reset of
    every row. Under an outer ``vmap`` the outer axis is folded into the batch (see
    :class:`VmapAutoResetWrapper`)."""

    @custom_batching.custom_vmap
    def reset(state, observation, ended):
        num_envs = ended.shape[0]
        next_episode = jax.vmap(lambda s: reset_after(env, s))

        def reset_few(size, carry):
            state, observation = carry
            # Indices of the (at most `size`) ended envs; the padding index num_envs is out of
            # range, so the scatters below drop it.
            index = jnp.nonzero(ended, size=size, fill_value=num_envs)[0]
            # The ended envs' rows (XLA drops the leaves reset_after does not read).
            ended_rows = jax.tree.map(lambda x: x[jnp.minimum(index, num_envs - 1)], state)
            fresh_state, fresh = next_episode(ended_rows)

            def put(batch, rows):
                return jax.tree.map(lambda x, y: x.at[index].set(y, mode="drop"), batch, rows)

            return put(state, fresh_state), put(observation, fresh.observation)

        def reset_all(carry):
            state, observation = carry
            fresh_state, fresh = next_episode(state)

            def select(fresh, old):
                return jax.tree.map(
                    lambda x, y: jnp.where(ended.reshape((-1,) + (1,) * (x.ndim - 1)), x, y),
                    fresh, old)

            return select(fresh_state, state), select(fresh.observation, observation)

        sizes = pass_sizes(size, num_envs)
        branches = [lambda carry: carry,
                    *(functools.partial(reset_few, k) for k in sizes), reset_all]
        count = jnp.sum(ended, dtype=jnp.int32)
        # 0: nothing ended; i: the i-th pass size is the first to hold them; last: every env.
        index = jnp.where(count == 0, 0,
                          1 + jnp.searchsorted(jnp.asarray(sizes, jnp.int32), count))
        return jax.lax.switch(index, branches, (state, observation))

    @reset.def_vmap
    def fold_outer_axis(axis_size, in_batched, state, observation, ended):
        # Each row's next episode depends on that row alone, so the outer batch's rows can
        # reset as one batch of axis_size * num_envs, with one branch for all of them.
        args = broadcast_unbatched(axis_size, tuple(in_batched), (state, observation, ended))
        fold = jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), args)
        out = reset_ended(env, size * axis_size)(*fold)
        out = jax.tree.map(lambda x: x.reshape((axis_size, -1, *x.shape[1:])), out)
        return out, jax.tree.map(lambda _: True, out)

    return reset
