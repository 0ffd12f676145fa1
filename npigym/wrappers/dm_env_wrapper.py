"""A dm_env adapter for any Jumanji environment.

```python
import npigym
from npigym.wrappers import DmEnvWrapper

env = DmEnvWrapper(npigym.make("Addition-v0", max_digits=3), seed=0)
timestep = env.reset()                      # FIRST
while not timestep.last():
    timestep = env.step(policy(timestep.observation))
timestep = env.step(action)                 # after LAST: a new episode's FIRST
```

``jumanji.wrappers.JumanjiToDMEnvWrapper`` says it auto-resets but its ``step`` keeps stepping
the ended episode; dm_env's contract (and its ``EnvironmentTestMixin``) wants the step after a
LAST timestep to start a new episode, which this adapter does.
"""

from __future__ import annotations

from typing import Any, Optional

import dm_env
import jax
import numpy as np
import tree
from dm_env import specs as dm_specs
from jumanji.env import Environment
from jumanji.specs import jumanji_specs_to_dm_env_specs

from npigym.wrappers.gymnasium_env import jitted_reset_step


class DmEnvWrapper(dm_env.Environment):
    """A Jumanji environment as a ``dm_env.Environment``.

    - ``reset()`` starts an episode (FIRST, reward and discount None); ``step(action)`` after a
      LAST timestep, or before any reset, starts a new one and ignores ``action``.
    - Specs come from ``jumanji.specs.jumanji_specs_to_dm_env_specs``: a nested observation
      spec becomes a dict (fields whose spec is None are left out) and the observations are
      numpy dicts of the same structure; rewards and discounts are numpy arrays of their specs'
      dtypes.
    - An action must conform to ``action_spec()`` up to a lossless dtype cast (a Python list of
      ints is fine), else ``ValueError``.
    - Episodes draw their JAX keys from ``np.random.default_rng(seed)``: equal seeds give equal
      episode sequences. ``reset``/``step`` are jitted once per env object.
    - ``extras``: the last timestep's extras as numpy (dm_env's TimeStep has no room for them).

    Args:
        env: an unbatched Jumanji environment.
        seed: seed of the episode keys (None: fresh entropy).

    Attributes:
        jumanji_env: the wrapped Jumanji environment.
        extras: the last timestep's extras.
    """

    def __init__(self, env: Environment, seed: Optional[int] = 0):
        self.jumanji_env = env
        self._rng = np.random.default_rng(seed)
        self._observation_spec = jumanji_specs_to_dm_env_specs(env.observation_spec)
        self._action_spec = jumanji_specs_to_dm_env_specs(env.action_spec)
        self._reward_spec = jumanji_specs_to_dm_env_specs(env.reward_spec)
        self._discount_spec = jumanji_specs_to_dm_env_specs(env.discount_spec)
        self._state: Optional[Any] = None
        self._reset_next_step = True
        self.extras: dict = {}
        self._reset, self._step = jitted_reset_step(env)

    @property
    def state(self) -> Any:
        """The current Jumanji state (None before the first reset)."""
        return self._state

    def reset(self) -> dm_env.TimeStep:
        self._state, (obs, extras) = self._reset(self._rng.integers(0, 2**32, dtype=np.uint32))
        self._reset_next_step = False
        self.extras = _numpy(extras)
        return dm_env.restart(self._cast(obs, self._observation_spec))

    def step(self, action: Any) -> dm_env.TimeStep:
        if self._reset_next_step:
            return self.reset()
        action = self._check_action(action)
        self._state, out = self._step(self._state, action)
        obs, reward, discount, last, extras = _numpy(out)
        self.extras = extras
        obs = self._cast(obs, self._observation_spec)
        reward = self._cast(reward, self._reward_spec)
        discount = self._cast(discount, self._discount_spec)
        if not last:
            return dm_env.transition(reward, obs, discount)
        self._reset_next_step = True
        return dm_env.TimeStep(dm_env.StepType.LAST, reward, discount, obs)

    def observation_spec(self) -> Any:
        return self._observation_spec

    def action_spec(self) -> Any:
        return self._action_spec

    def reward_spec(self) -> Any:
        return self._reward_spec

    def discount_spec(self) -> Any:
        return self._discount_spec

    def close(self) -> None:
        self.jumanji_env.close()

    @staticmethod
    def _cast(value: Any, spec: Any) -> Any:
        # With x64 off JAX hands back float32 where a spec may say float64; dm_env's validate
        # compares dtypes exactly.
        return tree.map_structure(lambda x, s: np.asarray(x, dtype=s.dtype), value, spec)

    def _check_action(self, action: Any) -> Any:
        def check(a: Any, spec: dm_specs.Array) -> np.ndarray:
            a = np.asarray(a)
            cast = a.astype(spec.dtype)
            if a.shape != spec.shape or not np.array_equal(cast, a):
                raise ValueError(f"action {a!r} does not conform to the action spec {spec}")
            return spec.validate(cast)

        try:
            # Up to the spec's structure: a list action fills one array spec.
            return tree.map_structure_up_to(self._action_spec, check, action, self._action_spec)
        except (TypeError, ValueError) as e:
            raise ValueError(f"invalid action {action!r}: {e}") from e


def _numpy(x: Any) -> Any:
    # np.array copies: callers keep what we return, and jit may forward an input buffer.
    return jax.tree.map(np.array, jax.device_get(x))
