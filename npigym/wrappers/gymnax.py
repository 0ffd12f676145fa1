"""A gymnax-style adapter: JAX training code written for gymnax environments runs on ours.

```python
import jax
import npigym
from npigym.wrappers.gymnax import GymnaxEnv

env = GymnaxEnv(npigym.make("Addition-v0", modes="macro", max_digits=5))
params = env.default_params
obs, state = env.reset(jax.random.PRNGKey(0), params)          # obs: (D,) float32
action = env.action_space(params).sample(jax.random.PRNGKey(1))  # Discrete(N): one (program, args)
obs, state, reward, done, info = env.step(jax.random.PRNGKey(2), state, action, params)
```

gymnax's conventions, as PureJaxRL's PPO and its ``LogWrapper`` / ``FlattenObservationWrapper``
expect them:

- ``reset(key, params) -> (obs, state)``; ``step(key, state, action, params) -> (obs, state,
  reward, done, info)`` with the auto-reset inside ``step``: when ``done``, the returned ``obs``
  and ``state`` are a fresh episode's (drawn from ``key``), ``reward`` and ``info`` the
  finishing step's. ``step_env`` / ``reset_env`` are the same without the auto-reset.
- ``done`` is True on terminations and truncations (gymnax folds its time limit into ``done``);
  ``info["discount"]`` is 0 on terminations and 1 otherwise (so bootstrapping code can tell a
  truncation), and ``info`` carries the env's extras (``success``, ``invalid_action``, ...).
- ``params`` are accepted and may be None (``default_params`` is used); the env's configuration
  (sizes, modes, reward) is fixed when it is built with ``npigym.make``, so ``EnvParams`` only
  records the step limit for code that reads ``max_steps_in_episode``.
- Observations: by default one flat float32 vector (``observation="flat"``): integer fields
  one-hot, masks 0/1, images scaled to [0, 1], floats as they are; ``observation="dict"``
  gives the gymnasium adapter's flat dict (:func:`npigym.wrappers.gymnasium_env.observation_space`).
  ``env.action_mask(state, params)`` is the exact mask of the flat actions.
- Actions: by default one ``Discrete(N)`` over the valid ``(program, args)`` calls
  (``flat_actions=True``, see :func:`npigym.wrappers.gymnasium_env.flat_action_table`): the
  categorical policy head of gymnax code fits it as it is. ``flat_actions=False`` keeps the
  ``(program, arg0, arg1, arg2)`` vector (a ``MultiDiscrete``-like ``Box`` of ints).

The auto-reset computes a reset at every step (under ``vmap`` both branches run), as gymnax's
does; npigym's own agents use :class:`npigym.wrappers.VmapAutoResetWrapper`, which resets only the
envs that ended and is faster.

The space classes here mirror ``gymnax.environments.spaces`` (``Discrete``, ``Box``, ``Dict``;
same attributes and ``sample`` / ``contains``). We do not import gymnax itself: gymnax 1.0.1
requires ``gymnasium<1.4`` (npigym uses gymnasium 1.4) and pulls in flax and seaborn.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces as gym_spaces
from jumanji.env import Environment

from npigym.wrappers.gymnasium_env import (
    DISCRETE,
    IMAGE,
    MULTI_DISCRETE,
    ObservationLeaf,
    _action_space_and_table,
    _check_scalar_reward,
    _mask_function,
    convert_observation,
    observation_leaves,
)

OBSERVATIONS = ("flat", "dict")


# ----------------------------------------------------------------------------------------------
# gymnax's spaces (gymnax.environments.spaces), minimal and compatible.
# ----------------------------------------------------------------------------------------------
class Space:
    """A gymnax space: ``sample(rng)`` and ``contains(x)`` (both pure JAX)."""

    def sample(self, rng: chex.PRNGKey) -> chex.Array:
        raise NotImplementedError

    def contains(self, x: Any) -> Any:
        raise NotImplementedError


class Discrete(Space):
    """``num_categories`` actions ``0 .. n - 1`` (gymnax's ``Discrete``: ``n``, ``shape=()``,
    ``dtype=jnp.int32``)."""

    def __init__(self, num_categories: int):
        assert num_categories >= 0
        self.n = int(num_categories)
        self.shape: Tuple[int, ...] = ()
        self.dtype = jnp.int32

    def sample(self, rng: chex.PRNGKey) -> chex.Array:
        return jax.random.randint(rng, shape=self.shape, minval=0, maxval=self.n).astype(
            self.dtype)

    def contains(self, x: Any) -> Any:
        x = jnp.asarray(x)
        return (x.shape == ()) and jnp.logical_and(x >= 0, x < self.n)

    def __repr__(self) -> str:
        return f"Discrete({self.n})"


class Box(Space):
    """Arrays within ``[low, high]`` (gymnax's ``Box``: ``low``, ``high``, ``shape``,
    ``dtype``)."""

    def __init__(self, low: Any, high: Any, shape: Tuple[int, ...], dtype: Any = jnp.float32):
        self.low = low
        self.high = high
        self.shape = tuple(shape)
        self.dtype = dtype

    def sample(self, rng: chex.PRNGKey) -> chex.Array:
        if jnp.issubdtype(self.dtype, jnp.integer):
            return jax.random.randint(rng, self.shape, jnp.asarray(self.low),
                                      jnp.asarray(self.high) + 1).astype(self.dtype)
        low = jnp.where(jnp.isfinite(self.low), self.low, -1.0)
        high = jnp.where(jnp.isfinite(self.high), self.high, 1.0)
        return jax.random.uniform(rng, self.shape, minval=low, maxval=high).astype(self.dtype)

    def contains(self, x: Any) -> Any:
        x = jnp.asarray(x)
        return (x.shape == self.shape) and jnp.all(
            jnp.logical_and(x >= self.low, x <= self.high))

    def __repr__(self) -> str:
        return f"Box(shape={self.shape}, dtype={jnp.dtype(self.dtype).name})"


class Dict(Space):
    """A dict of spaces (gymnax's ``Dict``: ``spaces``, ``num_spaces``)."""

    def __init__(self, spaces: Mapping[str, Space]):
        self.spaces = dict(spaces)
        self.num_spaces = len(spaces)

    def sample(self, rng: chex.PRNGKey) -> dict:
        keys = jax.random.split(rng, max(self.num_spaces, 1))
        return {k: s.sample(key) for key, (k, s) in zip(keys, self.spaces.items())}

    def contains(self, x: Any) -> Any:
        ok = jnp.asarray(True)
        for k, s in self.spaces.items():
            ok = jnp.logical_and(ok, s.contains(x[k]))
        return ok

    def __getitem__(self, key: str) -> Space:
        return self.spaces[key]

    def __repr__(self) -> str:
        return f"Dict({self.spaces})"


def from_gymnasium(space: gym_spaces.Space) -> Space:
    """The gymnax space of a gymnasium ``Discrete``, ``MultiDiscrete``, ``Box`` or ``Dict``."""
    if isinstance(space, gym_spaces.Discrete):
        return Discrete(int(space.n))
    if isinstance(space, gym_spaces.MultiDiscrete):
        return Box(np.zeros(space.shape, np.int32), np.asarray(space.nvec - 1, np.int32),
                   space.shape, jnp.int32)
    if isinstance(space, gym_spaces.Box):
        return Box(space.low, space.high, space.shape, space.dtype)
    if isinstance(space, gym_spaces.Dict):
        return Dict({k: from_gymnasium(s) for k, s in space.items()})
    raise TypeError(f"no gymnax space for {space}")


# ----------------------------------------------------------------------------------------------
# The adapter.
# ----------------------------------------------------------------------------------------------
@chex.dataclass(frozen=True)
class EnvParams:
    """gymnax's ``EnvParams``. npigym envs are configured when made; this only records the
    step limit (0 when it depends on the instance) for code that reads it."""

    max_steps_in_episode: int = 0


def _flat_layout(leaves: Sequence[ObservationLeaf]) -> Tuple[np.ndarray, np.ndarray]:
    lows, highs = [], []
    for leaf in leaves:
        space = leaf.space
        if leaf.kind == DISCRETE:
            size = int(space.n)
        elif leaf.kind == MULTI_DISCRETE:
            size = int(np.sum(space.nvec))
        elif leaf.kind == IMAGE or space.dtype == np.bool_:
            size = int(np.prod(space.shape))
        else:
            lows.append(np.asarray(space.low, np.float32).reshape(-1))
            highs.append(np.asarray(space.high, np.float32).reshape(-1))
            continue
        lows.append(np.zeros(size, np.float32))
        highs.append(np.ones(size, np.float32))
    return np.concatenate(lows), np.concatenate(highs)


def _flatten(converted: Any, leaves: Sequence[ObservationLeaf]) -> chex.Array:
    if not isinstance(converted, dict):
        converted = {leaves[0].key: converted}
    parts = []
    for leaf in leaves:
        x = converted[leaf.key]
        if leaf.kind == DISCRETE:
            parts.append(jax.nn.one_hot(x, int(leaf.space.n), dtype=jnp.float32))
        elif leaf.kind == MULTI_DISCRETE:
            parts += [jax.nn.one_hot(x[..., i], int(n), dtype=jnp.float32)
                      for i, n in enumerate(leaf.space.nvec)]
        elif leaf.kind == IMAGE:
            parts.append(x.reshape(*x.shape[: x.ndim - 3], -1).astype(jnp.float32) / 255.0)
        else:
            nd = len(leaf.space.shape)
            parts.append(x.reshape(*x.shape[: x.ndim - nd], -1).astype(jnp.float32))
    return jnp.concatenate(parts, axis=-1)


class GymnaxEnv:
    """A Jumanji environment with gymnax's API (see the module docstring).

    Args:
        env: an unbatched Jumanji environment with scalar reward and discount (any npigym env).
        observation: ``"flat"`` (one float32 vector, the default) or ``"dict"``.
        flat_actions: ``Discrete`` actions over the valid ``(program, args)`` calls (program
            machine envs; the default), else the env's own action vector.

    Attributes:
        jumanji_env: the wrapped environment.
        flat_action_table: with flat actions, the ``(N, 4)`` call each action stands for.
    """

    def __init__(self, env: Environment, observation: str = "flat", flat_actions: bool = True):
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, not {observation!r}")
        _check_scalar_reward(env)
        self.jumanji_env = env
        self.observation_type = observation
        self._leaves = observation_leaves(env.observation_spec)
        gym_action_space, self.flat_action_table = _action_space_and_table(
            env, flat_actions and _is_program_env(env))
        self._action_space = from_gymnasium(gym_action_space)
        self._table = None if self.flat_action_table is None else jnp.asarray(
            self.flat_action_table)
        self._mask_fn = _mask_function(env, self.flat_action_table is not None)
        if observation == "flat":
            low, high = _flat_layout(self._leaves)
            self._observation_space: Space = Box(low, high, low.shape, jnp.float32)
        else:
            from npigym.wrappers.gymnasium_env import observation_space

            self._observation_space = from_gymnasium(observation_space(env.observation_spec))

    # gymnax's API -----------------------------------------------------------------------------
    @property
    def default_params(self) -> EnvParams:
        """The parameters used when ``params`` is None."""
        return EnvParams(max_steps_in_episode=int(getattr(self.jumanji_env, "time_limit", 0)
                                                  or 0))

    @property
    def name(self) -> str:
        """The registered id (or the class name of an unregistered env)."""
        return str(getattr(self.jumanji_env, "env_id", type(self.jumanji_env).__name__))

    @property
    def num_actions(self) -> int:
        """The number of discrete actions (the action vector's length without flat actions)."""
        space = self._action_space
        return space.n if isinstance(space, Discrete) else int(np.prod(space.shape))

    def observation_space(self, params: Optional[EnvParams] = None) -> Space:
        """The observation space (a ``Box`` vector, or a ``Dict`` with ``observation="dict"``)."""
        del params
        return self._observation_space

    def action_space(self, params: Optional[EnvParams] = None) -> Space:
        """The action space: ``Discrete(N)`` with flat actions."""
        del params
        return self._action_space

    def reset(self, key: chex.PRNGKey, params: Optional[EnvParams] = None
              ) -> Tuple[Any, Any]:
        """``(obs, state)`` of a new episode drawn from ``key``."""
        return self.reset_env(key, params)

    def step(self, key: chex.PRNGKey, state: Any, action: Any,
             params: Optional[EnvParams] = None) -> Tuple[Any, Any, chex.Array, chex.Array,
                                                          dict]:
        """One step with gymnax's auto-reset: when ``done``, ``obs`` and ``state`` are those of
        a new episode drawn from ``key``."""
        key_step, key_reset = jax.random.split(key)
        obs_st, state_st, reward, done, info = self.step_env(key_step, state, action, params)
        obs_re, state_re = self.reset_env(key_reset, params)
        state = jax.tree.map(lambda x, y: jax.lax.select(done, x, y), state_re, state_st)
        obs = jax.tree.map(lambda x, y: jax.lax.select(done, x, y), obs_re, obs_st)
        return obs, state, reward, done, info

    def reset_env(self, key: chex.PRNGKey, params: Optional[EnvParams] = None
                  ) -> Tuple[Any, Any]:
        """``(obs, state)`` of a new episode (gymnax's ``reset_env``)."""
        del params
        state, timestep = self.jumanji_env.reset(key)
        return self._observe(timestep.observation), state

    def step_env(self, key: chex.PRNGKey, state: Any, action: Any,
                 params: Optional[EnvParams] = None) -> Tuple[Any, Any, chex.Array, chex.Array,
                                                              dict]:
        """One step without the auto-reset (gymnax's ``step_env``)."""
        del key, params
        if self._table is not None:
            action = self._table[jnp.clip(jnp.asarray(action, jnp.int32), 0,
                                          self._table.shape[0] - 1)]
        state, timestep = self.jumanji_env.step(state, action)
        done = timestep.last()
        info = {**{k: v for k, v in timestep.extras.items() if k != "next_obs"},
                "discount": jnp.asarray(timestep.discount, jnp.float32)}
        return (self._observe(timestep.observation), state,
                jnp.asarray(timestep.reward, jnp.float32), done, info)

    def action_mask(self, state: Any, params: Optional[EnvParams] = None) -> chex.Array:
        """The valid actions in ``state`` (exact for flat actions; see
        :meth:`npigym.wrappers.GymnasiumEnv.action_masks`)."""
        del params
        return self._mask_fn(state, self._jumanji_observation(state))

    # ------------------------------------------------------------------------------------------
    def _jumanji_observation(self, state: Any) -> Any:
        env = self.jumanji_env
        if _is_program_env(env):  # the machine's observation of a state (its own helper)
            return env._observe(state.task, state.stack)
        raise NotImplementedError(f"action_mask needs an npigym program env, not "
                                  f"{type(env).__name__}")

    def _observe(self, observation: Any) -> Any:
        converted = convert_observation(observation, self._leaves)
        if self.observation_type == "dict":
            return converted
        return _flatten(converted, self._leaves)

    def __repr__(self) -> str:
        return f"GymnaxEnv({self.jumanji_env!r}, observation={self.observation_type!r})"


def _is_program_env(env: Environment) -> bool:
    from npigym.wrappers.gymnasium_env import _program_env

    return _program_env(env) is not None
