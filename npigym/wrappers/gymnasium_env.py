"""Gymnasium adapters for any Jumanji environment: one env, and a natively batched vector env.

```python
import gymnasium
import npigym  # registers "npigym/<Id>" with gymnasium

env = gymnasium.make("npigym/Addition-v0", max_digits=3, render_mode="ansi")
obs, info = env.reset(seed=0)
obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

envs = gymnasium.make_vec("npigym/Addition-v0", num_envs=64)  # one jitted vmapped step
```

We write our own rather than use ``jumanji.wrappers.JumanjiToGymWrapper``, which fails gymnasium
1.4's own tooling: its ``unwrapped`` is the Jumanji env, so ``gymnasium.make`` writes the spec
onto the wrong object (``assert env.spec is not None`` fails) and ``check_env`` finds no
``_np_random``; it also reports ``truncated=True`` on every terminal step and has no
``render_modes``.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable, Dict, List, Mapping, Optional, SupportsFloat, Tuple

import chex
import gymnasium
import jax
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from jumanji import specs
from jumanji.env import Environment

from npigym.registration import make as npigym_make
from npigym.wrappers.auto_reset import VmapAutoResetWrapper

RENDER_MODES = ("ansi", "rgb_array")
# The viewers' animations default to 200 ms a frame.
RENDER_FPS = 5


# ----------------------------------------------------------------------------------------------
# Specs -> spaces, observations -> dicts.
# ----------------------------------------------------------------------------------------------
def _children(spec: specs.Spec) -> Dict[str, specs.Spec]:
    # Same walk as jumanji's own converters: the public attributes that are specs, so an
    # observation field whose spec is None (``full`` in local mode) is left out.
    return {name: child for name, child in vars(spec).items()
            if not name.startswith("_") and isinstance(child, specs.Spec)}


def _observed_dtype(spec: specs.Array) -> np.dtype:
    # What the arrays will actually hold: with x64 off, a spec declared ``float`` (float64)
    # yields float32, and the passive checker warns when a Box's dtype differs from the data's.
    return np.dtype(jax.dtypes.canonicalize_dtype(spec.dtype))


def _box(spec: specs.Array, dtype: np.dtype) -> spaces.Box:
    if isinstance(spec, specs.BoundedArray):
        low, high = np.asarray(spec.minimum), np.asarray(spec.maximum)
    elif dtype == np.bool_:
        low, high = np.asarray(False), np.asarray(True)
    elif np.issubdtype(dtype, np.integer):
        low, high = np.asarray(np.iinfo(dtype).min), np.asarray(np.iinfo(dtype).max)
    else:
        low, high = np.asarray(-np.inf), np.asarray(np.inf)
    shape = tuple(spec.shape)
    return spaces.Box(np.broadcast_to(low, shape).astype(dtype),
                      np.broadcast_to(high, shape).astype(dtype), shape, dtype)


def observation_space(spec: specs.Spec) -> spaces.Space:
    """The gymnasium space of observations described by a Jumanji observation spec.

    Unlike ``jumanji.specs.jumanji_specs_to_gym_spaces``, dtypes are those the data arrives in
    (a ``MultiDiscrete`` leaf keeps its int32), and a ``DiscreteArray`` leaf becomes a
    ``Box((), 0..n-1)``: it arrives as a 0-d array, which gymnasium's checker rejects for
    ``Discrete`` (it wants a Python int).

    Args:
        spec: a Jumanji spec; nested ``Spec`` -> ``Dict`` (fields whose spec is None are
            dropped), ``MultiDiscreteArray`` -> ``MultiDiscrete``, other arrays -> ``Box``
            (bounded by the spec's bounds, bool arrays in ``[False, True]``).

    Returns:
        The space; a ``Dict`` for a nested spec.
    """
    if isinstance(spec, specs.Array):
        dtype = _observed_dtype(spec)
        if isinstance(spec, specs.MultiDiscreteArray):
            return spaces.MultiDiscrete(np.asarray(spec.num_values), dtype=dtype)
        return _box(spec, dtype)
    return spaces.Dict({name: observation_space(child)
                        for name, child in _children(spec).items()})


def action_space(spec: specs.Spec) -> spaces.Space:
    """The gymnasium space of actions described by a Jumanji action spec.

    ``DiscreteArray`` -> ``Discrete``, ``MultiDiscreteArray`` -> ``MultiDiscrete`` (both int64,
    gymnasium's default, so that ``contains`` accepts int64 and int32 actions alike), other
    arrays -> ``Box``, nested specs -> ``Dict``.
    """
    if isinstance(spec, specs.DiscreteArray):
        return spaces.Discrete(int(spec.num_values))
    if isinstance(spec, specs.MultiDiscreteArray):
        return spaces.MultiDiscrete(np.asarray(spec.num_values, np.int64))
    if isinstance(spec, specs.Array):
        return _box(spec, _observed_dtype(spec))
    return spaces.Dict({name: action_space(child) for name, child in _children(spec).items()})


def observation_to_dict(observation: Any, spec: specs.Spec) -> Any:
    """``observation`` (a NamedTuple or dataclass, nested as ``spec``) as nested dicts.

    Fields whose spec is None are dropped, as in :func:`observation_space`. Pure: works on
    traced values inside ``jit``.
    """
    if isinstance(spec, specs.Array):
        return observation
    get = (lambda name: observation[name]) if isinstance(observation, Mapping) else (
        lambda name: getattr(observation, name))
    return {name: observation_to_dict(get(name), child)
            for name, child in _children(spec).items()}


def action_to_jax(action: Any, space: spaces.Space, spec: specs.Spec) -> Any:
    """Check ``action`` against ``space`` and cast it to the spec's dtype for the jitted step.

    Raises:
        ValueError: if the action is not in the space (no silent clipping).
    """
    candidate = action if isinstance(space, spaces.Dict) else np.asarray(action)
    if not space.contains(candidate):
        raise ValueError(f"action {action!r} is not in the action space {space}")
    return _cast_action(candidate, space, spec)


def _cast_action(action: Any, space: spaces.Space, spec: specs.Spec) -> Any:
    if isinstance(space, spaces.Dict):
        return {name: _cast_action(action[name], sub, getattr(spec, name))
                for name, sub in space.items()}
    return np.asarray(action, dtype=_observed_dtype(spec))


def _host(tree: Any) -> Any:
    # np.array copies: jit may hand back an input buffer unchanged (an observation leaf the step
    # did not touch), and users keep what we return (gymnasium's check_env tests for sharing).
    return jax.tree.map(np.array, jax.device_get(tree))


def _info(extras: Any) -> Any:
    return jax.tree.map(lambda x: x.item() if x.ndim == 0 else x, _host(extras))


def _check_scalar_reward(env: Environment) -> None:
    for name in ("reward_spec", "discount_spec"):
        if tuple(getattr(env, name).shape) != ():
            raise ValueError(f"{type(env).__name__}'s {name} has shape "
                             f"{getattr(env, name).shape}; gymnasium needs one scalar reward "
                             "(wrap multi-agent envs in jumanji.wrappers.MultiToSingleWrapper)")


def _render_modes(env: Environment) -> List[str]:
    return list(RENDER_MODES) if _takes_render_mode(env) else ["rgb_array"]


def _takes_render_mode(env: Environment) -> bool:
    # npigym envs take ``render(state, mode)``; a plain Jumanji env takes ``render(state)`` and
    # returns whatever its viewer was built to return.
    try:
        return "mode" in inspect.signature(env.render).parameters
    except (TypeError, ValueError):
        return False


def render_state(env: Environment, state: Any, mode: str) -> Any:
    """Render one unbatched ``state``: ``"ansi"`` -> str, ``"rgb_array"`` -> (H, W, 3) uint8.

    Raises:
        NotImplementedError: when the env cannot render in ``mode`` (e.g. a Jumanji env whose
            viewer draws on screen and returns nothing).
    """
    frame = env.render(state, mode) if _takes_render_mode(env) else env.render(state)
    if mode == "ansi":
        if not isinstance(frame, str):
            raise NotImplementedError(f"{type(env).__name__}.render gave no text")
        return frame
    if frame is None:
        raise NotImplementedError(
            f"{type(env).__name__}.render returned no image; build the env with a viewer in "
            "'rgb_array' mode (and a render that returns the viewer's array)")
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[-1] == 4:  # matplotlib canvases are RGBA
        frame = frame[..., :3]
    if frame.dtype != np.uint8:
        frame = (np.clip(frame, 0, 1) * 255).astype(np.uint8) if np.issubdtype(
            frame.dtype, np.floating) else frame.astype(np.uint8)
    return np.ascontiguousarray(frame)


def _check_render_mode(render_mode: Optional[str], modes: List[str]) -> None:
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode must be one of {modes} or None, not {render_mode!r}")


# ----------------------------------------------------------------------------------------------
# Jitted reset/step, shared by the adapters of one env object.
# ----------------------------------------------------------------------------------------------
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _jitted(env: Environment, kind: str,
            build: Callable[[Callable[[], Environment]], Tuple[Callable, Callable]]
            ) -> Tuple[Callable, Callable]:
    # Every adapter of one env object (a gymnasium env and a dm_env one, an eval copy, ...)
    # shares one compilation per kind. The closures reach the env through a weak reference so
    # that the cache entry goes when the env does.
    try:
        per_env = _COMPILED.setdefault(env, {})
    except TypeError:  # unhashable or not weak-referenceable: compile for this adapter alone
        return build(lambda: env)
    if kind not in per_env:
        per_env[kind] = build(weakref.ref(env))
    return per_env[kind]


def _build_single(get_env: Callable[[], Environment]) -> Tuple[Callable, Callable]:
    def reset(seed: chex.Array) -> Tuple[Any, Tuple[Any, Any]]:
        env = get_env()
        state, timestep = env.reset(jax.random.PRNGKey(seed))
        return state, (observation_to_dict(timestep.observation, env.observation_spec),
                       timestep.extras)

    def step(state: Any, action: Any) -> Tuple[Any, Tuple[Any, ...]]:
        env = get_env()
        state, timestep = env.step(state, action)
        return state, (observation_to_dict(timestep.observation, env.observation_spec),
                       timestep.reward, timestep.discount, timestep.last(), timestep.extras)

    return jax.jit(reset), jax.jit(step)


def jitted_reset_step(env: Environment) -> Tuple[Callable, Callable]:
    """``reset(seed) -> (state, (obs, extras))`` and ``step(state, action) -> (state, (obs,
    reward, discount, last, extras))`` of ``env``, jitted, with ``obs`` as nested dicts (see
    :func:`observation_to_dict`) and the episode key ``PRNGKey(seed)`` for a uint32 ``seed``.

    Compiled once per env object, whichever adapters use it.
    """
    return _jitted(env, "single", _build_single)


def _build_vector(get_env: Callable[[], Environment]) -> Tuple[Callable, Callable]:
    # Batched auto-reset: resets only the envs that ended (vmap of the per-env wrapper would
    # compute a reset for every env at every step).
    def as_dicts(env: Environment, observation: Any) -> Dict[str, Any]:
        return jax.vmap(lambda o: observation_to_dict(o, env.observation_spec))(observation)

    def reset(seeds: chex.Array) -> Tuple[Any, Tuple[Any, Any]]:
        env = get_env()
        state, timestep = VmapAutoResetWrapper(env).reset(jax.vmap(jax.random.PRNGKey)(seeds))
        extras = {k: v for k, v in timestep.extras.items() if k != "next_obs"}
        return state, (as_dicts(env, timestep.observation), extras)

    def step(state: Any, action: Any) -> Tuple[Any, Tuple[Any, ...]]:
        env = get_env()
        state, timestep = VmapAutoResetWrapper(env).step(state, action)
        extras = dict(timestep.extras)
        final_obs = as_dicts(env, extras.pop("next_obs"))
        last = timestep.last()
        return state, (as_dicts(env, timestep.observation),
                       timestep.reward, last & (timestep.discount == 0),
                       last & (timestep.discount > 0), extras, final_obs)

    return jax.jit(reset), jax.jit(step)


# ----------------------------------------------------------------------------------------------
# One environment.
# ----------------------------------------------------------------------------------------------
class GymnasiumEnv(gymnasium.Env):
    """A Jumanji environment as a ``gymnasium.Env`` (passes ``gymnasium``'s ``check_env``).

    - Observations: numpy, a ``Dict`` space built from the observation spec (see
      :func:`observation_space`; it includes the action mask).
    - Actions: ``Discrete`` / ``MultiDiscrete`` (or ``Box``) from the action spec. An action
      outside the space raises ``ValueError``; an action in the space that the env deems invalid
      (a masked program) is the env's documented no-op.
    - ``terminated`` is ``last and discount == 0``, ``truncated`` is ``last and discount > 0``
      (never both). ``info`` holds the timestep's extras as numpy (0-d values as Python scalars).
    - ``reset(seed=s)`` seeds ``np_random`` and draws the episode's JAX key from it: equal seeds
      give equal episodes; ``options`` is ignored.
    - Stepping before ``reset`` or after the episode ended raises ``gymnasium.error.ResetNeeded``
      (as ``gymnasium.wrappers.OrderEnforcing`` does for a step before the first reset).
    - ``reset``/``step`` are jitted once per env object (adapters of one env share them); each
      call syncs with the host.

    Args:
        env: an unbatched Jumanji environment with scalar reward and discount.
        render_mode: ``"ansi"`` (text; npigym envs only), ``"rgb_array"`` or None.

    Attributes:
        jumanji_env: the wrapped Jumanji environment.
    """

    # gymnasium's API: a class attribute, which each instance narrows to the modes its env has.
    metadata = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}  # noqa: RUF012

    def __init__(self, env: Environment, render_mode: Optional[str] = None):
        _check_scalar_reward(env)
        self.metadata = {**self.metadata, "render_modes": _render_modes(env)}
        _check_render_mode(render_mode, self.metadata["render_modes"])
        self.jumanji_env = env
        self.render_mode = render_mode
        self.observation_space = observation_space(env.observation_spec)
        self.action_space = action_space(env.action_spec)
        self._state: Optional[Any] = None
        self._done = False
        self._reset, self._step = jitted_reset_step(env)

    @property
    def state(self) -> Any:
        """The current Jumanji state (None before the first reset)."""
        return self._state

    def reset(self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None
              ) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
        super().reset(seed=seed)
        episode_seed = self.np_random.integers(0, 2**32, dtype=np.uint32)
        self._state, (obs, extras) = self._reset(episode_seed)
        self._done = False
        return _host(obs), _info(extras)

    def step(self, action: Any) -> Tuple[Dict[str, np.ndarray], SupportsFloat, bool, bool,
                                         Dict[str, Any]]:
        if self._state is None:
            raise ResetNeeded("Cannot call env.step() before calling env.reset()")
        if self._done:
            raise ResetNeeded("The episode has ended (terminated or truncated); call "
                              "env.reset() before env.step()")
        action = action_to_jax(action, self.action_space, self.jumanji_env.action_spec)
        self._state, out = self._step(self._state, action)
        obs, reward, discount, last, extras = out
        reward, discount, last = jax.device_get((reward, discount, last))
        terminated = bool(last) and bool(discount == 0)
        truncated = bool(last) and not terminated
        self._done = bool(last)
        return _host(obs), float(reward), terminated, truncated, _info(extras)

    def render(self) -> Any:
        """The current state as text (``"ansi"``) or an (H, W, 3) uint8 image (``"rgb_array"``)."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() was called without a render_mode; pass "
                                  "render_mode='ansi' or 'rgb_array' when making the env")
            return None
        if self._state is None:
            raise ResetNeeded("Cannot call env.render() before calling env.reset()")
        return render_state(self.jumanji_env, self._state, self.render_mode)

    def close(self) -> None:
        self.jumanji_env.close()


def make_gymnasium_env(env_id: str, render_mode: Optional[str] = None,
                       **kwargs: Any) -> GymnasiumEnv:
    """``npigym.make(env_id, **kwargs)`` as a :class:`GymnasiumEnv` (gymnasium's entry point).

    Raises:
        UnknownEnvironmentError, TypeError, ValueError: as ``npigym.make``.
    """
    return GymnasiumEnv(npigym_make(env_id, **kwargs), render_mode=render_mode)


# ----------------------------------------------------------------------------------------------
# A batch of environments.
# ----------------------------------------------------------------------------------------------
class GymnasiumVectorEnv(gymnasium.vector.VectorEnv):
    """``num_envs`` copies of a Jumanji environment, stepped together by one jitted, vmapped step.

    Episodes auto-reset in the step that ends them (``AutoresetMode.SAME_STEP``, through
    :class:`npigym.wrappers.VmapAutoResetWrapper`, which resets only the envs that ended): the
    returned observation of a finished env is its next episode's first observation, while its
    reward, ``terminations``/``truncations`` and infos are the finishing step's.

    ``infos`` layout (batched dicts of arrays, not ``SyncVectorEnv``'s object arrays):

    - every extra of the timestep ``k``: ``infos[k]`` with a leading ``(num_envs,)`` axis and
      ``infos["_k"]`` all True (gymnasium's mask convention). On a finishing step these are the
      finishing step's extras (the new episode's first extras are not reported).
    - on steps where some env finished, ``infos["final_obs"]`` is the batched observation dict
      whose rows ``i`` with ``infos["_final_obs"][i]`` True hold env ``i``'s real final
      observation (the other rows equal the returned observation). Both keys are absent on
      steps where no env finished.

    ``reset(seed=s)`` seeds ``np_random`` and draws every env's key from it (``seed`` is an int
    or None; ``options`` is ignored: every env is reset). Stepping before the first reset raises
    ``gymnasium.error.ResetNeeded``. ``render()`` returns a tuple of per-env frames.

    Args:
        env: an unbatched Jumanji environment (with scalar reward and discount, and a ``key``
            in its state); it must not auto-reset already.
        num_envs: the batch size.
        render_mode: ``"ansi"``, ``"rgb_array"`` or None.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS,  # noqa: RUF012
                "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env: Environment, num_envs: int, render_mode: Optional[str] = None):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) \
                or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, not {num_envs!r}")
        _check_scalar_reward(env)
        self.metadata = {**self.metadata, "render_modes": _render_modes(env)}
        _check_render_mode(render_mode, self.metadata["render_modes"])
        self.jumanji_env = env
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.single_observation_space = observation_space(env.observation_spec)
        self.single_action_space = action_space(env.action_spec)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._state: Optional[Any] = None
        # One jitted step with batched auto-reset (VmapAutoResetWrapper) for the whole batch.
        self._reset, self._step = _jitted(env, "vector", _build_vector)

    @property
    def state(self) -> Any:
        """The current batched Jumanji state (None before the first reset)."""
        return self._state

    def reset(self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None
              ) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, not {seed!r}")
        super().reset(seed=seed)
        seeds = self.np_random.integers(0, 2**32, size=self.num_envs, dtype=np.uint32)
        self._state, out = self._reset(seeds)
        obs, extras = _host(out)
        return obs, self._infos(extras)

    def step(self, actions: Any) -> Tuple[Dict[str, np.ndarray], np.ndarray, np.ndarray,
                                          np.ndarray, Dict[str, Any]]:
        if self._state is None:
            raise ResetNeeded("Cannot call env.step() before calling env.reset()")
        actions = action_to_jax(actions, self.action_space, self.jumanji_env.action_spec)
        self._state, out = self._step(self._state, actions)
        obs, reward, terminated, truncated, extras, final_obs = _host(out)
        infos = self._infos(extras)
        done = terminated | truncated
        if done.any():
            infos["final_obs"] = final_obs
            infos["_final_obs"] = done
        return obs, reward, terminated, truncated, infos

    def render(self) -> Optional[Tuple[Any, ...]]:
        """One frame per env (see :meth:`GymnasiumEnv.render`)."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() was called without a render_mode")
            return None
        if self._state is None:
            raise ResetNeeded("Cannot call env.render() before calling env.reset()")
        state = jax.device_get(self._state)
        return tuple(render_state(self.jumanji_env, jax.tree.map(lambda x, i=i: x[i], state),
                                  self.render_mode) for i in range(self.num_envs))

    def close_extras(self, **kwargs: Any) -> None:
        self.jumanji_env.close()

    def _infos(self, extras: Mapping[str, Any]) -> Dict[str, Any]:
        infos: Dict[str, Any] = {}
        for key, value in extras.items():
            infos[key] = value
            infos[f"_{key}"] = np.ones(self.num_envs, bool)
        return infos


def make_gymnasium_vector_env(env_id: str, num_envs: int = 1, render_mode: Optional[str] = None,
                              max_episode_steps: Optional[int] = None,
                              **kwargs: Any) -> GymnasiumVectorEnv:
    """``npigym.make(env_id, **kwargs)`` as a :class:`GymnasiumVectorEnv` (gymnasium's vector
    entry point, used by ``gymnasium.make_vec``).

    Raises:
        ValueError: for ``max_episode_steps``: gymnasium's ``TimeLimit`` cannot cut episodes
            inside the jitted batch; give the environment's own ``time_limit`` instead.
        UnknownEnvironmentError, TypeError, ValueError: as ``npigym.make``.
    """
    if max_episode_steps is not None:
        raise ValueError(f"max_episode_steps={max_episode_steps} is not supported by the "
                         f"batched {env_id}: pass the environment's time_limit instead")
    return GymnasiumVectorEnv(npigym_make(env_id, **kwargs), num_envs, render_mode=render_mode)
