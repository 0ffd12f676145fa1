"""Gymnasium adapters for any Jumanji environment: one env, and a natively batched vector env.

```python
import gymnasium
import npigym  # registers "npigym/<Id>" with gymnasium

env = gymnasium.make("npigym/Addition-v0", max_digits=3, render_mode="ansi")
obs, info = env.reset(seed=0)
obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

envs = gymnasium.make_vec("npigym/Addition-v0", num_envs=64)  # one jitted vmapped step

# One Discrete action per valid (program, args) call, with an exact mask (sb3-contrib's
# MaskablePPO reads env.action_masks()):
env = gymnasium.make("npigym/Addition-v0", flat_actions=True)
```

Observations follow the conventions stable-baselines3 and gymnasium's checker expect (a one-level
``Dict``; integer scalars ``Discrete``; bounded integer arrays ``MultiDiscrete``; masks bool
``Box``es; images uint8; see :func:`observation_space`); both checkers pass on every registered id.

We write our own rather than use ``jumanji.wrappers.JumanjiToGymWrapper``, which fails gymnasium
1.4's own tooling: its ``unwrapped`` is the Jumanji env, so ``gymnasium.make`` writes the spec
onto the wrong object (``assert env.spec is not None`` fails) and ``check_env`` finds no
``_np_random``; it also reports ``truncated=True`` on every terminal step and has no
``render_modes``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import weakref
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    SupportsFloat,
    Tuple,
)

import chex
import gymnasium
import jax
import jax.numpy as jnp
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
# Specs -> spaces, observations -> flat dicts in the ecosystem's conventions.
# ----------------------------------------------------------------------------------------------
def _children(spec: specs.Spec) -> Dict[str, specs.Spec]:
    # Same walk as jumanji's own converters: the public attributes that are specs, so an
    # observation field whose spec is None (an absent optional field) is left out.
    return {name: child for name, child in vars(spec).items()
            if not name.startswith("_") and isinstance(child, specs.Spec)}


def _observed_dtype(spec: specs.Array) -> np.dtype:
    # What the arrays will actually hold: with x64 off, a spec declared ``float`` (float64)
    # yields float32, and the passive checker warns when a Box's dtype differs from the data's.
    return np.dtype(jax.dtypes.canonicalize_dtype(spec.dtype))


def _box(spec: specs.Array, dtype: np.dtype, shape: Optional[Tuple[int, ...]] = None
         ) -> spaces.Box:
    if isinstance(spec, specs.BoundedArray):
        low, high = np.asarray(spec.minimum), np.asarray(spec.maximum)
    elif dtype == np.bool_:
        low, high = np.asarray(False), np.asarray(True)
    elif np.issubdtype(dtype, np.integer):
        low, high = np.asarray(np.iinfo(dtype).min), np.asarray(np.iinfo(dtype).max)
    else:
        low, high = np.asarray(-np.inf), np.asarray(np.inf)
    spec_shape = tuple(spec.shape)
    shape = spec_shape if shape is None else shape
    low = np.broadcast_to(low, spec_shape).reshape(shape).astype(dtype)
    high = np.broadcast_to(high, spec_shape).reshape(shape).astype(dtype)
    return spaces.Box(low, high, shape, dtype)


# How one leaf of a Jumanji observation becomes one entry of the gymnasium observation.
DISCRETE, MULTI_DISCRETE, BOX, IMAGE = "discrete", "multi_discrete", "box", "image"


@dataclasses.dataclass(frozen=True)
class ObservationLeaf:
    """One entry of the gymnasium observation: where it comes from and how it is converted.

    Attributes:
        key: its key in the (one-level) observation dict: the field's path joined with ``/``
            (``"local/image"``), or ``""`` for an observation that is one array.
        path: the field names leading to the leaf in the Jumanji observation.
        kind: ``"discrete"`` (an integer scalar: ``Discrete(n)``, the value minus the spec's
            minimum, an int64 scalar), ``"multi_discrete"`` (a bounded integer array:
            ``MultiDiscrete``, minus the minimum, flattened to 1-D), ``"image"`` (a float image
            in [0, 1]: a uint8 ``(H, W, C)`` Box in 0..255) or ``"box"`` (the rest as they come:
            masks as bool Boxes, float arrays, 0-d floats reshaped to ``(1,)``).
        space: its gymnasium space.
        source_shape: the shape of the leaf in the Jumanji observation.
        offset: what is subtracted from integer values (the spec's minimum), else None.
    """

    key: str
    path: Tuple[str, ...]
    kind: str
    space: spaces.Space
    source_shape: Tuple[int, ...]
    offset: Optional[np.ndarray] = None


def _integer_bounds(spec: specs.Array) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    if isinstance(spec, specs.MultiDiscreteArray):
        nvec = np.broadcast_to(np.asarray(spec.num_values), spec.shape)
        return np.zeros(spec.shape, np.int64), nvec.astype(np.int64) - 1
    if isinstance(spec, specs.BoundedArray):
        low = np.broadcast_to(np.asarray(spec.minimum), spec.shape).astype(np.int64)
        high = np.broadcast_to(np.asarray(spec.maximum), spec.shape).astype(np.int64)
        return low, high
    return None


def _is_image(spec: specs.Array, dtype: np.dtype) -> bool:
    # npigym's images (Canonicalize's ``local.image``) are float arrays named "image" in [0, 1].
    if not (spec.name == "image" and np.issubdtype(dtype, np.floating)
            and len(spec.shape) in (2, 3) and isinstance(spec, specs.BoundedArray)):
        return False
    return bool(np.all(np.asarray(spec.minimum) == 0) and np.all(np.asarray(spec.maximum) == 1))


def _leaf(key: str, path: Tuple[str, ...], spec: specs.Array) -> ObservationLeaf:
    dtype = _observed_dtype(spec)
    shape = tuple(spec.shape)
    if dtype == np.bool_:
        if shape == ():
            return ObservationLeaf(key, path, DISCRETE, spaces.Discrete(2), shape,
                                  np.zeros((), np.int64))
        return ObservationLeaf(key, path, BOX, _box(spec, dtype), shape)
    if np.issubdtype(dtype, np.integer):
        bounds = _integer_bounds(spec)
        if bounds is not None and np.all(bounds[1] >= bounds[0]):
            low, high = bounds
            if shape == ():
                return ObservationLeaf(key, path, DISCRETE, spaces.Discrete(int(high - low + 1)),
                                       shape, low)
            nvec = (high - low + 1).reshape(-1)
            return ObservationLeaf(key, path, MULTI_DISCRETE,
                                   spaces.MultiDiscrete(nvec, dtype=dtype), shape, low)
        return ObservationLeaf(key, path, BOX, _box(spec, dtype, shape or (1,)), shape)
    if _is_image(spec, dtype):
        hwc = shape if len(shape) == 3 else (*shape, 1)
        return ObservationLeaf(key, path, IMAGE, spaces.Box(0, 255, hwc, np.uint8), shape)
    return ObservationLeaf(key, path, BOX, _box(spec, dtype, shape or (1,)), shape)


def observation_leaves(spec: specs.Spec) -> List[ObservationLeaf]:
    """The entries of the gymnasium observation of a Jumanji observation spec (see
    :func:`observation_space`), in the spec's field order."""
    out: List[ObservationLeaf] = []

    def walk(s: specs.Spec, path: Tuple[str, ...]) -> None:
        if isinstance(s, specs.Array):
            out.append(_leaf("/".join(path), path, s))
            return
        for name, child in _children(s).items():
            walk(child, (*path, name))

    walk(spec, ())
    keys = [leaf.key for leaf in out]
    if len(set(keys)) != len(keys):
        raise ValueError(f"observation fields collide once flattened: {keys}")
    return out


def observation_space(spec: specs.Spec) -> spaces.Space:
    """The gymnasium space of observations described by a Jumanji observation spec.

    The conventions stable-baselines3, CleanRL and gymnasium's checker expect:

    - one level of keys: nested fields are flattened, their path joined with ``/``
      (Canonicalize's ``local.image`` is ``obs["local/image"]``); fields whose spec is None
      are left out; an observation that is one array gives that array's space (no Dict);
    - an integer scalar is ``Discrete(n)`` and arrives as an int64 scalar: the value minus the
      spec's minimum (``program``, ``depth``; DiscountingChain's ``context`` in -1..4 arrives as
      0..5); a bool scalar is ``Discrete(2)``;
    - a bounded integer array (``MultiDiscreteArray`` or ``BoundedArray``) is a 1-D
      ``MultiDiscrete`` (minus the minimum, flattened if it has several dimensions; same dtype
      as the data); an unbounded one a Box over its dtype's range;
    - masks (bool arrays) are bool Boxes with their shape;
    - images (float arrays named ``image`` in [0, 1]) are uint8 ``(H, W, C)`` Boxes in 0..255,
      what stable-baselines3's CNN policies recognise;
    - other arrays are Boxes of their spec's bounds and the data's dtype; 0-d floats have
      shape ``(1,)``. No space is 0-dimensional.

    Returns:
        A ``Dict`` for a nested spec, else the one leaf's space.
    """
    leaves = observation_leaves(spec)
    if isinstance(spec, specs.Array):
        return leaves[0].space
    return spaces.Dict({leaf.key: leaf.space for leaf in leaves})


def _get(observation: Any, name: str) -> Any:
    return observation[name] if isinstance(observation, Mapping) else getattr(observation, name)


def convert_observation(observation: Any, leaves: Sequence[ObservationLeaf]) -> Any:
    """A Jumanji observation as the values of :func:`observation_space` (pure JAX: works on
    traced values and under ``vmap``; leading batch axes are kept). Discrete entries come out
    as int32 here; the adapters hand them to users as int64."""
    out = {}
    for leaf in leaves:
        x = observation
        for name in leaf.path:
            x = _get(x, name)
        x = jnp.asarray(x)
        batch = x.shape[: x.ndim - len(leaf.source_shape)]
        if leaf.kind == DISCRETE:
            x = (x - leaf.offset).astype(jnp.int32)
        elif leaf.kind == MULTI_DISCRETE:
            x = (x - leaf.offset).astype(leaf.space.dtype).reshape(*batch, -1)
        elif leaf.kind == IMAGE:
            x = jnp.round(jnp.clip(x, 0.0, 1.0) * 255).astype(jnp.uint8)
            x = x.reshape(*batch, *leaf.space.shape)
        else:
            x = x.astype(leaf.space.dtype).reshape(*batch, *leaf.space.shape)
        out[leaf.key] = x
    if len(leaves) == 1 and leaves[0].key == "":
        return out[""]
    return out



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


def _action_space_and_table(env: Environment, flat: bool
                            ) -> Tuple[spaces.Space, Optional[np.ndarray]]:
    space = action_space(env.action_spec)
    if not flat or (isinstance(space, spaces.Discrete) and _program_env(env) is None):
        return space, None
    table = flat_action_table(env)
    return spaces.Discrete(len(table)), table


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
# Action masks and flat actions.
# ----------------------------------------------------------------------------------------------
def _program_env(env: Environment) -> Optional[Any]:
    # Imported here: the machine imports nothing from the wrappers, and plain Jumanji envs work
    # without it.
    from npigym.envs.machine import ProgramEnv

    return env if isinstance(env, ProgramEnv) else None


def flat_action_table(env: Environment) -> np.ndarray:
    """``(N, 1 + NUM_ARGS)`` int32: every ``(program, arg0, arg1, arg2)`` call of a program
    machine env that can ever be valid, the rows of the flat ``Discrete(N)`` action space.

    A program that no frame may call (the root) is left out; each program comes with the
    argument values it allows in the slots it uses and 0 in the others (which it ignores).

    Raises:
        ValueError: for an env that is not a program machine.
    """
    if _program_env(env) is None:
        raise ValueError(f"flat actions enumerate (program, args) calls of npigym's program "
                         f"machine envs; {type(env).__name__} is not one")
    lib = env.library
    rows = []
    for p in range(lib.num_programs):
        if not lib.callable[:, p].any():
            continue
        choices = [np.flatnonzero(lib.arg_valid[p, s, :lib.arg_num_values[s]])
                   if s < lib.num_args[p] else np.zeros(1, np.int64)
                   for s in range(lib.arg_valid.shape[1])]
        for args in itertools.product(*choices):
            rows.append((p, *args))
    return np.asarray(rows, np.int32)


def _mask_function(env: Environment, flat: bool) -> Callable[[Any, Any], chex.Array]:
    """``mask(state, observation) -> bool array``: the action mask of the gymnasium action space
    (pure JAX). See :meth:`GymnasiumEnv.action_masks`."""
    machine = _program_env(env)
    if machine is not None and flat:
        from npigym.envs.machine.library import KIND_PRIMITIVE

        table = flat_action_table(env)
        programs, args = jnp.asarray(table[:, 0]), jnp.asarray(table[:, 1:])
        is_primitive = jnp.asarray(machine.library.kind[table[:, 0]] == KIND_PRIMITIVE)

        def flat_mask(state: Any, observation: Any) -> chex.Array:
            # Exactly the step's validity: the program callable from this frame (its arguments
            # are allowed by construction of the table) and, for a primitive, accepted by the
            # task in this state (not moving a pointer off the pad, ...).
            accepted = jax.vmap(lambda p, a: machine.apply_primitive(state.task, p, a)[1])(
                programs, args)
            return observation.action_mask[programs] & (~is_primitive | accepted)

        return flat_mask
    if machine is not None:
        lib = machine.library
        num_slots = lib.arg_valid.shape[1]
        uses = jnp.asarray(np.arange(num_slots)[None, :] < lib.num_args[:, None])
        arg_valid = jnp.asarray(lib.arg_valid)
        sizes = [int(n) for n in lib.arg_num_values]

        def per_dimension_mask(state: Any, observation: Any) -> chex.Array:
            del state
            programs = observation.action_mask
            parts = [programs]
            for s, n in enumerate(sizes):
                # The values some callable program taking this slot allows; a slot no callable
                # program takes is ignored, and 0 stands for it.
                takers = programs & uses[:, s]
                allowed = jnp.any(takers[:, None] & arg_valid[:, s, :n], axis=0)
                parts.append(jnp.where(jnp.any(takers), allowed, jnp.arange(n) == 0))
            return jnp.concatenate(parts)

        return per_dimension_mask

    space = action_space(env.action_spec)
    size = int(space.n) if isinstance(space, spaces.Discrete) else (
        int(np.sum(space.nvec)) if isinstance(space, spaces.MultiDiscrete) else 0)

    def generic_mask(state: Any, observation: Any) -> chex.Array:
        # A plain Jumanji env: its ``action_mask`` field when it has the mask's layout, else
        # everything is allowed.
        del state
        try:
            mask = jnp.asarray(_get(observation, "action_mask"))
        except (AttributeError, KeyError, TypeError):
            return jnp.ones((size,), bool)
        if mask.dtype == jnp.bool_ and mask.size == size:
            return mask.reshape(size)
        return jnp.ones((size,), bool)

    return generic_mask


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


def _build_gymnasium_single(get_env: Callable[[], Environment], flat: bool
                            ) -> Tuple[Callable, Callable]:
    env0 = get_env()
    leaves = observation_leaves(env0.observation_spec)
    mask_fn = _mask_function(env0, flat)
    del env0

    def reset(seed: chex.Array) -> Tuple[Any, Tuple[Any, ...]]:
        env = get_env()
        state, timestep = env.reset(jax.random.PRNGKey(seed))
        return state, (convert_observation(timestep.observation, leaves),
                       mask_fn(state, timestep.observation), timestep.extras)

    def step(state: Any, action: Any) -> Tuple[Any, Tuple[Any, ...]]:
        env = get_env()
        state, timestep = env.step(state, action)
        return state, (convert_observation(timestep.observation, leaves),
                       mask_fn(state, timestep.observation), timestep.reward, timestep.discount,
                       timestep.last(), timestep.extras)

    return jax.jit(reset), jax.jit(step)


def _build_gymnasium_vector(get_env: Callable[[], Environment], flat: bool
                            ) -> Tuple[Callable, Callable]:
    # Batched auto-reset: resets only the envs that ended (vmap of the per-env wrapper would
    # compute a reset for every env at every step).
    env0 = get_env()
    leaves = observation_leaves(env0.observation_spec)
    mask_fn = jax.vmap(_mask_function(env0, flat))
    del env0

    def reset(seeds: chex.Array) -> Tuple[Any, Tuple[Any, ...]]:
        env = get_env()
        state, timestep = VmapAutoResetWrapper(env).reset(jax.vmap(jax.random.PRNGKey)(seeds))
        extras = {k: v for k, v in timestep.extras.items() if k != "next_obs"}
        return state, (convert_observation(timestep.observation, leaves),
                       mask_fn(state, timestep.observation), extras)

    def step(state: Any, action: Any) -> Tuple[Any, Tuple[Any, ...]]:
        env = get_env()
        state, timestep = VmapAutoResetWrapper(env).step(state, action)
        extras = dict(timestep.extras)
        final_obs = convert_observation(extras.pop("next_obs"), leaves)
        last = timestep.last()
        return state, (convert_observation(timestep.observation, leaves),
                       mask_fn(state, timestep.observation), timestep.reward,
                       last & (timestep.discount == 0), last & (timestep.discount > 0), extras,
                       final_obs)

    return jax.jit(reset), jax.jit(step)


def _host_observation(observation: Any, leaves: Sequence[ObservationLeaf]) -> Any:
    """The jitted function's observation as numpy (copies), integer scalars as int64."""
    observation = _host(observation)
    if not isinstance(observation, dict):
        if leaves[0].kind == DISCRETE:
            observation = observation.astype(np.int64)
            return observation[()] if observation.ndim == 0 else observation
        return observation
    for leaf in leaves:
        if leaf.kind == DISCRETE:
            value = observation[leaf.key].astype(np.int64)
            observation[leaf.key] = value[()] if value.ndim == 0 else value
    return observation


# ----------------------------------------------------------------------------------------------
# One environment.
# ----------------------------------------------------------------------------------------------
class GymnasiumEnv(gymnasium.Env):
    """A Jumanji environment as a ``gymnasium.Env`` (passes ``gymnasium``'s and
    stable-baselines3's ``check_env``).

    - Observations: numpy, a one-level ``Dict`` space in the ecosystem's conventions (integer
      scalars ``Discrete`` as int64 scalars, bounded integer arrays ``MultiDiscrete``, masks
      bool Boxes, images uint8 ``(H, W, C)``; nested fields flattened to ``"a/b"`` keys; see
      :func:`observation_space`). It includes the env's ``action_mask`` of callable programs.
    - Actions: ``Discrete`` / ``MultiDiscrete`` (or ``Box``) from the action spec, or with
      ``flat_actions=True`` on a program machine env one ``Discrete(N)`` over the
      ``(program, args)`` calls in :attr:`flat_action_table`. An action outside the space
      raises ``ValueError``; an action in the space that the env deems invalid (a masked
      program) is the env's documented no-op.
    - :meth:`action_masks`: the mask sb3-contrib's ``MaskablePPO`` reads. For ``MultiDiscrete``
      actions, per-dimension masks concatenated (approximate: which arguments are valid
      depends on the program); for flat actions, one bool per call, exact (True if and only if
      the step would not report ``invalid_action``).
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
        flat_actions: one ``Discrete`` action per valid ``(program, args)`` call (program
            machine envs only; an env whose actions are ``Discrete`` already is unchanged).

    Attributes:
        jumanji_env: the wrapped Jumanji environment.
        flat_action_table: with flat actions, the ``(N, 4)`` calls that action ``i`` stands
            for (row ``i``); else None.
    """

    # gymnasium's API: a class attribute, which each instance narrows to the modes its env has.
    metadata = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}  # noqa: RUF012

    def __init__(self, env: Environment, render_mode: Optional[str] = None,
                 flat_actions: bool = False):
        _check_scalar_reward(env)
        self.metadata = {**self.metadata, "render_modes": _render_modes(env)}
        _check_render_mode(render_mode, self.metadata["render_modes"])
        self.jumanji_env = env
        self.render_mode = render_mode
        self._leaves = observation_leaves(env.observation_spec)
        self.observation_space = observation_space(env.observation_spec)
        self.action_space, self.flat_action_table = _action_space_and_table(env, flat_actions)
        self._flat = self.flat_action_table is not None
        self._state: Optional[Any] = None
        self._mask: Optional[np.ndarray] = None
        self._done = False
        self._reset, self._step = _jitted(
            env, "gymnasium-flat" if self._flat else "gymnasium",
            functools.partial(_build_gymnasium_single, flat=self._flat))

    @property
    def state(self) -> Any:
        """The current Jumanji state (None before the first reset)."""
        return self._state

    def action_masks(self) -> np.ndarray:
        """The valid actions of the current state, as sb3-contrib's ``MaskablePPO`` reads them.

        - ``MultiDiscrete`` actions ``(program, arg0, arg1, arg2)``: the four dimensions' masks
          concatenated (``sum(nvec)`` bools): the callable programs, then for each argument
          slot the values some callable program taking that slot allows (only 0 when none
          takes it). Approximate: a program may be combined with another program's argument
          values, and a primitive the task would reject (a pointer moved off the pad) is not
          masked.
        - Flat actions: one bool per row of :attr:`flat_action_table`, exact: True if and only
          if stepping that call would not be an invalid action.
        - A plain Jumanji env: its ``action_mask`` observation when it has the action space's
          layout, else all True.

        Raises:
            ResetNeeded: before the first reset.
        """
        if self._mask is None:
            raise ResetNeeded("Cannot call env.action_masks() before calling env.reset()")
        return self._mask.copy()

    def reset(self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None
              ) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
        super().reset(seed=seed)
        episode_seed = self.np_random.integers(0, 2**32, dtype=np.uint32)
        self._state, (obs, mask, extras) = self._reset(episode_seed)
        self._done = False
        self._mask = np.array(mask)
        return _host_observation(obs, self._leaves), _info(extras)

    def step(self, action: Any) -> Tuple[Dict[str, np.ndarray], SupportsFloat, bool, bool,
                                         Dict[str, Any]]:
        if self._state is None:
            raise ResetNeeded("Cannot call env.step() before calling env.reset()")
        if self._done:
            raise ResetNeeded("The episode has ended (terminated or truncated); call "
                              "env.reset() before env.step()")
        action = self._to_jax(action)
        self._state, out = self._step(self._state, action)
        obs, mask, reward, discount, last, extras = out
        reward, discount, last = jax.device_get((reward, discount, last))
        terminated = bool(last) and bool(discount == 0)
        truncated = bool(last) and not terminated
        self._done = bool(last)
        self._mask = np.array(mask)
        return (_host_observation(obs, self._leaves), float(reward), terminated, truncated,
                _info(extras))

    def _to_jax(self, action: Any) -> Any:
        if self._flat:
            if not self.action_space.contains(np.asarray(action)):
                raise ValueError(f"action {action!r} is not in the action space "
                                 f"{self.action_space}")
            return self.flat_action_table[int(action)]
        return action_to_jax(action, self.action_space, self.jumanji_env.action_spec)

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
                       flat_actions: bool = False, **kwargs: Any) -> GymnasiumEnv:
    """``npigym.make(env_id, **kwargs)`` as a :class:`GymnasiumEnv` (gymnasium's entry point:
    ``gymnasium.make("npigym/Addition-v0", flat_actions=True, max_digits=3)``).

    Raises:
        UnknownEnvironmentError, TypeError, ValueError: as ``npigym.make``.
    """
    return GymnasiumEnv(_shared_make(env_id, kwargs), render_mode=render_mode,
                        flat_actions=flat_actions)


# Jumanji envs made by ``gymnasium.make`` with equal arguments, while some adapter holds one:
# stable-baselines3's ``make_vec_env(n_envs=8)`` makes eight adapters, which then share one env
# object and so one compilation of reset and step (the envs are stateless; each adapter keeps
# its own state). Arguments that are not plain values (skills, ...) make a new env each time.
_SHARED: "weakref.WeakValueDictionary[Any, Environment]" = weakref.WeakValueDictionary()


def _frozen(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool, type(None))):
        return (type(value).__name__, value)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_frozen(v) for v in value))
    if isinstance(value, Mapping):
        return ("dict", tuple(sorted((str(k), _frozen(v)) for k, v in value.items())))
    raise TypeError


def _shared_make(env_id: str, kwargs: Mapping[str, Any]) -> Environment:
    try:
        key = (env_id, _frozen(dict(kwargs)))
    except TypeError:
        return npigym_make(env_id, **kwargs)
    env = _SHARED.get(key)
    if env is None:
        env = npigym_make(env_id, **kwargs)
        try:
            _SHARED[key] = env
        except TypeError:  # not weak-referenceable
            pass
    return env


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

    Observations and actions follow :class:`GymnasiumEnv` (``flat_actions`` included), batched;
    ``action_masks()`` returns the ``(num_envs, ...)`` masks of the current observations
    (after an auto-reset, the new episode's).

    Args:
        env: an unbatched Jumanji environment (with scalar reward and discount, and a ``key``
            in its state); it must not auto-reset already.
        num_envs: the batch size.
        render_mode: ``"ansi"``, ``"rgb_array"`` or None.
        flat_actions: one ``Discrete`` action per valid ``(program, args)`` call (see
            :class:`GymnasiumEnv`).
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS,  # noqa: RUF012
                "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env: Environment, num_envs: int, render_mode: Optional[str] = None,
                 flat_actions: bool = False):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) \
                or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, not {num_envs!r}")
        _check_scalar_reward(env)
        self.metadata = {**self.metadata, "render_modes": _render_modes(env)}
        _check_render_mode(render_mode, self.metadata["render_modes"])
        self.jumanji_env = env
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self._leaves = observation_leaves(env.observation_spec)
        self.single_observation_space = observation_space(env.observation_spec)
        self.single_action_space, self.flat_action_table = _action_space_and_table(
            env, flat_actions)
        self._flat = self.flat_action_table is not None
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._state: Optional[Any] = None
        self._mask: Optional[np.ndarray] = None
        # One jitted step with batched auto-reset (VmapAutoResetWrapper) for the whole batch.
        self._reset, self._step = _jitted(
            env, "vector-flat" if self._flat else "vector",
            functools.partial(_build_gymnasium_vector, flat=self._flat))

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
        self._state, (obs, mask, extras) = self._reset(seeds)
        self._mask = np.array(mask)
        return _host_observation(obs, self._leaves), self._infos(_host(extras))

    def action_masks(self) -> np.ndarray:
        """``(num_envs, ...)`` bool: each env's :meth:`GymnasiumEnv.action_masks`.

        Raises:
            ResetNeeded: before the first reset.
        """
        if self._mask is None:
            raise ResetNeeded("Cannot call env.action_masks() before calling env.reset()")
        return self._mask.copy()

    def step(self, actions: Any) -> Tuple[Dict[str, np.ndarray], np.ndarray, np.ndarray,
                                          np.ndarray, Dict[str, Any]]:
        if self._state is None:
            raise ResetNeeded("Cannot call env.step() before calling env.reset()")
        if self._flat:
            if not self.action_space.contains(np.asarray(actions)):
                raise ValueError(f"actions {actions!r} are not in the action space "
                                 f"{self.action_space}")
            actions = self.flat_action_table[np.asarray(actions)]
        else:
            actions = action_to_jax(actions, self.action_space, self.jumanji_env.action_spec)
        self._state, (obs, mask, *out) = self._step(self._state, actions)
        self._mask = np.array(mask)
        reward, terminated, truncated, extras, final_obs = _host(out)
        infos = self._infos(extras)
        done = terminated | truncated
        obs = _host_observation(obs, self._leaves)
        if done.any():
            infos["final_obs"] = _host_observation(final_obs, self._leaves)
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
                              max_episode_steps: Optional[int] = None, flat_actions: bool = False,
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
    return GymnasiumVectorEnv(npigym_make(env_id, **kwargs), num_envs, render_mode=render_mode,
                              flat_actions=flat_actions)
