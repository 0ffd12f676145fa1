"""Property tests over every registered environment's constructor arguments (issue 29).

For each id, hypothesis draws keyword arguments (size knobs and the other knobs), each either a
good value or one that is nonsense on its own (negative, zero where invalid, a float, a bool, a
string, a size whose step limit would not fit int32):

- every combination is either accepted or rejected with a ``ValueError`` whose message names one
  of the arguments given, and a combination holding a nonsense value is always rejected;
- every accepted combination (drawn from small sizes, so compiles stay cheap) resets and steps,
  jitted, under expert, random valid and raw out-of-range actions, without an invariant broken:
  observations within the spec, the call stack's depth within its bounds, the step count within
  a step limit that is positive and fits int32 (a time limit kept as given), finite rewards,
  discount 0 only on the last step, expert actions valid;
- each size bound sits exactly where the int32 step limit ends (or below), and the jitted int32
  step limit of the largest accepted instance equals its exact value.

The compiled functions of a configuration are reused when hypothesis draws it again.
"""

from __future__ import annotations

import functools
import math
import re
import types
from typing import Any, Dict, List, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jumanji.types import StepType

import npigym
from npigym.envs.machine.checks import INT32_MAX
from npigym.envs.machine.env import ProgramEnv

IDS = npigym.registered_environments()
NAN, INF = float("nan"), float("inf")

# ---------------------------------------------------------------------------------------------
# Knob tables: per task family, each knob's good values (some only jointly bad, e.g. min > max)
# and values that are nonsense whatever else is given.
# ---------------------------------------------------------------------------------------------
BAD_SIZE = [0, -1, 2.5, True, "3", 2**63, np.float32(2.0), np.bool_(True)]  # None: the default
COMMON: Dict[str, Tuple[List[Any], List[Any]]] = {
    "reward": (["sparse", "dense"], ["Sparse", "", None, 1]),
    "observation": (["local", "full"], ["pixels", None]),
    "time_limit": ([None, 1, 3, 40, INT32_MAX, np.int64(40)],
                   [0, -1, 2.5, True, "10", INT32_MAX + 1, 2**40, np.int64(2**40)]),
    "invalid_action_penalty": ([0.0, 0.5, 1, np.float32(0.25)], [NAN, INF, "x", True, None]),
    "render_mode": (["ansi", "rgb_array", "human"], ["video", None]),
    "modes": ([], ["turbo", 3, {"NOPE": "builtin"}]),
}
SORTING = {
    "min_length": ([1, 2, 3, np.int64(2), 8192], [*BAD_SIZE, 8193, 10**6]),
    "max_length": ([1, 2, 4, np.int32(3), 8192], [*BAD_SIZE, 8193, 10**6, 2**40]),
    "max_value": ([1, 9, 200, 65535, np.int16(9)], [0, -1, 65536, 1.0, True, "9"]),
}
KNOBS: Dict[str, Dict[str, Tuple[List[Any], List[Any]]]] = {
    "Addition": {
        "min_digits": ([1, 2, 3, np.int64(2)], [*BAD_SIZE, 10**9]),
        "max_digits": ([1, 2, 5, np.int32(3), 10_000_000], [*BAD_SIZE, 10_000_001, 10**9]),
        "nines": ([None, 0.0, 0.3, 1.0, np.float32(0.5)], [-0.1, 1.5, NAN, "0.3", True]),
    },
    "Sorting": SORTING,
    "Max": SORTING,
    "KthLargest": {**SORTING, "k": ([None, 1, 2, np.int64(1)], [0, -1, 1.5, True, "1"])},
    "Multiplication": {
        "min_digits": ([1, 2, np.int64(1)], BAD_SIZE),
        "max_digits": ([1, 2, 3, 2063, 2100], [*BAD_SIZE, 70_000, 10**12]),
        "min_multiplier_digits": ([1, 2], BAD_SIZE),
        "max_multiplier_digits": ([1, 2, 2063, 2100], [*BAD_SIZE, 70_000, 10**12]),
    },
    "DotProduct": {
        "min_length": ([1, 2, 3], BAD_SIZE),
        "max_length": ([1, 2, 3, 9, np.int64(2)], [*BAD_SIZE, 10, 10**6]),
        "min_digits": ([1, 2], BAD_SIZE),
        "max_digits": ([1, 2, 687, 2063], [*BAD_SIZE, 30_001, 10**9]),
    },
    "Canonicalize": {
        "image_size": ([8, 12, (8, 16), np.int64(8)], [0, 7, 257, 10**6, 2.5, True, (8,), "8"]),
        "min_rotations": ([0, 1, 2, 4, 18, 19], [-1, 1.5, True, "2", None, 10**6]),
        "max_rotations": ([None, 0, 2, 4, 10**30], [-1, 1.5, True, "4"]),
        "num_models": ([None, 1, 16, 65536], [0, -3, 65537, 1.5, True]),
        "shape_seed": ([0, 7, 2**32 - 1], [-1, 2**32, 1.5, True, None]),
        "target": ([None, (0, 15), (90, 30), (0, 0)], [(7, 15), (0,), "x", (0, 15.5), 3]),
        "azimuth_range": ([(-75, 75), (-180, 165), (0, 0)], [(75, -75), (0, 360), (1, 2), "x"]),
        "elevation_range": ([(0, 60), (15, 75), (30, 30)],
                            [(-15, 30), (0, 105), (60, 0), (0, 7), None]),
        "family": (["cars", "sedan", ("suv", "pickup")], ["boats", 3, (), ("suv", "suv")]),
        "split": (["seen", "unseen"], ["test", None]),
    },
    "DiscountingChain": {
        "mapping_seed": ([0, 3, -7, 10**30, np.int64(4)], [1.5, True, "3", None]),
    },
}

# Small good values for the rollouts: few shapes, so the compiled functions are few and cheap.
SMALL_SIZES: Dict[str, Dict[str, List[Any]]] = {
    "Addition": {"min_digits": [1, 2], "max_digits": [2, 3]},
    "Sorting": {"min_length": [1, 2], "max_length": [2, 3], "max_value": [3, 9, 300]},
    "Max": {"min_length": [1, 2], "max_length": [2, 3], "max_value": [9]},
    "KthLargest": {"min_length": [2], "max_length": [2, 3], "k": [None, 1, 2]},
    "Multiplication": {"max_digits": [1, 2], "max_multiplier_digits": [1, 2]},
    "DotProduct": {"min_length": [1], "max_length": [1, 2], "max_digits": [1]},
    "Canonicalize": {"image_size": [8], "min_rotations": [0, 1], "max_rotations": [None, 3],
                     "target": [None, (0, 15)], "num_models": [None, 4]},
    "DiscountingChain": {"mapping_seed": [0, 3, 10**30]},
}
SMALL_COMMON = {"reward": ["dense", "sparse"], "observation": ["full", "local"],
                "time_limit": [None, 3, 40], "invalid_action_penalty": [0.0, 0.5]}
# Knobs every rollout sets (so shapes stay small; the first value of each is hypothesis's first
# example, hence dense and full); the others may be left at their defaults.
REQUIRED = {"Addition": ["max_digits"], "Sorting": ["max_length"], "Max": ["max_length"],
            "KthLargest": ["max_length"], "Multiplication": ["max_digits"],
            "DotProduct": ["max_length", "max_digits"], "Canonicalize": ["image_size"],
            "DiscountingChain": []}
PROGRAM_REQUIRED = ["reward", "observation"]

# No shrinking: a failing configuration is reported as drawn (shrinking would compile others).
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def family(env_id: str) -> str:
    return env_id.split("-")[0]


def is_program_env(env_id: str) -> bool:
    return family(env_id) != "DiscountingChain"


def knob_table(env_id: str) -> Dict[str, Tuple[List[Any], List[Any]]]:
    return {**KNOBS[family(env_id)], **(COMMON if is_program_env(env_id) else {})}


def tagged(good: List[Any], bad: List[Any]) -> st.SearchStrategy:
    """("good", value) or ("bad", value); bad values a quarter of the time."""
    options = []
    if good:
        options.append(st.tuples(st.just("good"), st.sampled_from(good)))
    if bad:
        options.append(st.tuples(st.just("bad"), st.sampled_from(bad)))
    return st.one_of(*options)


def names_one_of(message: str, names) -> bool:
    return any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", message) for n in names)


# ---------------------------------------------------------------------------------------------
# Accepted or rejected, never silently wrong.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_constructor_arguments__are_accepted_or_rejected_naming_the_argument(env_id):
    table = knob_table(env_id)
    strategy = st.fixed_dictionaries(
        {}, optional={name: tagged(good, bad) for name, (good, bad) in table.items()})

    @settings(max_examples=60, **SETTINGS)
    @given(strategy)
    def check(drawn):
        kwargs = {name: value for name, (_, value) in drawn.items()}
        bad = sorted(name for name, (tag, _) in drawn.items() if tag == "bad")
        try:
            env = npigym.make(env_id, **kwargs)
        except ValueError as error:
            assert names_one_of(str(error), kwargs), (
                f"{env_id}({kwargs}) raised a ValueError naming none of its arguments: {error}")
            return
        assert not bad, f"{env_id} accepted the nonsense {bad} in {kwargs}"
        if is_program_env(env_id):
            env.observation_spec, env.action_spec  # noqa: B018 (specs build)
            if kwargs.get("time_limit") is not None:
                assert env.time_limit == int(kwargs["time_limit"])

    check()


# ---------------------------------------------------------------------------------------------
# Every accepted combination resets and steps without breaking an invariant.
# ---------------------------------------------------------------------------------------------
# Compile for speed, not for run time: the rollouts are a few steps of tiny instances.
_JIT = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                                                    "xla_llvm_disable_expensive_passes": True})
_COMPILED: Dict[str, Any] = {}


def compiled(env_id: str, kwargs: Dict[str, Any]):
    """The env and its jitted functions, built once per configuration: ``reset``, and ``step``
    (for program envs ``step(state, action, use_expert)``, which takes the expert's action
    instead of ``action`` where ``use_expert``: one compile for both)."""
    key = f"{env_id} {sorted((k, repr(v)) for k, v in kwargs.items())}"
    if key not in _COMPILED:
        env = npigym.make(env_id, **kwargs)
        fns = types.SimpleNamespace(env=env, reset=_JIT(env.reset), step=_JIT(env.step))
        if is_program_env(env_id):
            def step(state, action, use_expert):
                if env.has_expert:  # static
                    action = jnp.where(use_expert, env.expert_action(state), action)
                return env.step(state, action)

            fns.step = _JIT(step)
        _COMPILED[key] = fns
    return _COMPILED[key]


def random_valid_action(env: ProgramEnv, observation, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random valid action from the observation's mask (drawn on the host, so
    nothing more compiles)."""
    program = int(rng.choice(np.flatnonzero(np.asarray(observation.action_mask))))
    args = [int(rng.choice(np.flatnonzero(allowed)))
            for allowed in env.library.arg_valid[program]]
    return np.asarray([program, *args], np.int32)


def check_program_timestep(env: ProgramEnv, state, timestep, first: bool) -> None:
    env.observation_spec.validate(timestep.observation)
    depth = int(state.stack.depth)
    assert 0 <= depth < env.max_depth
    assert int(timestep.observation.depth) == depth
    count, limit = int(state.step_count), int(state.step_limit)
    assert 1 <= limit <= INT32_MAX and 0 <= count <= limit
    if env.time_limit is not None:
        assert limit == env.time_limit
    assert math.isfinite(float(timestep.reward))
    step_type, discount = int(timestep.step_type), float(timestep.discount)
    if first:
        assert step_type == StepType.FIRST and count == 0 and float(timestep.reward) == 0.0
        return
    assert step_type in (StepType.MID, StepType.LAST) and discount in (0.0, 1.0)
    assert discount == 1.0 or step_type == StepType.LAST  # 0 only when the root returned
    if count >= limit:
        assert step_type == StepType.LAST
    assert not bool(timestep.extras["success"]) or step_type == StepType.LAST


def rollout_program_env(fns, seed: int, steps: int = 10) -> None:
    env = fns.env
    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(seed)
    state, timestep = fns.reset(key)
    check_program_timestep(env, state, timestep, first=True)
    high = int(np.max(np.asarray(env.action_spec.num_values))) + 3
    for i in range(steps):
        if timestep.last():
            key = jax.random.fold_in(key, i)
            state, timestep = fns.reset(key)
            check_program_timestep(env, state, timestep, first=True)
            continue
        expert = env.has_expert and (i < 4 or i % 3 == 0)
        if i % 3 == 1:
            action = random_valid_action(env, timestep.observation, rng)
        else:  # raw: often out of range or masked
            action = rng.integers(-3, high, size=4).astype(np.int32)
        state, timestep = fns.step(state, action, expert)
        check_program_timestep(env, state, timestep, first=False)
        if expert:  # (a masked-in primitive may still be invalid: a move off the pad)
            assert not bool(timestep.extras["invalid_action"]), (env, action)


def rollout_discounting_chain(fns, seed: int) -> None:
    env = fns.env
    state, timestep = fns.reset(jax.random.PRNGKey(seed))
    env.observation_spec.validate(timestep.observation)
    for t in range(1, 101):
        action = jnp.asarray((seed + t) % 9 - 2, jnp.int32)  # out of range too: clipped
        state, timestep = fns.step(state, action)
        env.observation_spec.validate(timestep.observation)
        assert math.isfinite(float(timestep.reward)) and float(timestep.reward) >= 0.0
        assert bool(timestep.last()) == (t == 100)
    assert float(timestep.discount) == 0.0


@pytest.mark.parametrize("env_id", IDS)
def test_accepted_arguments__reset_and_step_keeping_the_invariants(env_id):
    fam = family(env_id)
    small = {**SMALL_SIZES[fam], **(SMALL_COMMON if is_program_env(env_id) else {})}
    names = REQUIRED[fam] + (PROGRAM_REQUIRED if is_program_env(env_id) else [])
    required = {n: st.sampled_from(small[n]) for n in names}
    optional = {n: st.sampled_from(v) for n, v in small.items() if n not in required}
    # A configuration's compile takes 1-5 s on one CPU core: the heavy families (builtin
    # macros inside the step, a renderer) get one configuration each, the others two.
    heavy = fam in ("DotProduct", "Multiplication", "Canonicalize")

    @settings(max_examples=1 if heavy else 2, **SETTINGS)
    @given(st.fixed_dictionaries(required, optional=optional), st.integers(0, 2**16))
    def check(kwargs, seed):
        try:
            fns = compiled(env_id, kwargs)
        except ValueError as error:  # jointly bad (e.g. k above min_length): named, never run
            assert names_one_of(str(error), kwargs), error
            return
        if is_program_env(env_id):
            rollout_program_env(fns, seed)
        else:
            rollout_discounting_chain(fns, seed)

    check()


# ---------------------------------------------------------------------------------------------
# The bounds sit where the int32 step limit ends.
# ---------------------------------------------------------------------------------------------
def _ns(**fields):
    return types.SimpleNamespace(**{k: jnp.asarray(v, jnp.int32) for k, v in fields.items()})


def test_size_bounds__the_largest_accepted_instance_has_an_exact_int32_step_limit():
    from npigym.envs.addition import task as addition_task
    from npigym.envs.addition.generator import MAX_DIGITS
    from npigym.envs.dot_product import task as dot_task
    from npigym.envs.dot_product.generator import worst_case_step_limit as dot_limit
    from npigym.envs.kth_largest import task as kth_task
    from npigym.envs.multiplication import task as mul_task
    from npigym.envs.multiplication.generator import worst_case_step_limit as mul_limit
    from npigym.envs.sorting import Max, Sorting
    from npigym.envs.sorting import constants as sc
    from npigym.envs.sorting import task as sorting_task

    # Addition: the pad's columns.
    exact = 2 * (14 * (MAX_DIGITS + 1) + 1)
    assert int(addition_task.default_step_limit(_ns(num_digits=MAX_DIGITS))) == exact
    # Sorting, Max, KthLargest at the longest row (a reversed array; k = 1).
    n = sc.MAX_LENGTH_LIMIT
    assert int(sorting_task.default_step_limit(_ns(length=n))) \
        == Sorting.worst_case_step_limit(n) <= INT32_MAX
    assert int(sorting_task.max_default_step_limit(_ns(length=n))) \
        == Max.worst_case_step_limit(n) <= INT32_MAX
    assert 0 < int(kth_task.default_step_limit(_ns(length=n, k=1))) <= INT32_MAX
    for env_id in ("Sorting-v0", "Max-v0", "KthLargest-v0"):
        npigym.make(env_id, max_length=n)
        with pytest.raises(ValueError, match="max_length must be in"):
            npigym.make(env_id, max_length=n + 1)
    # Multiplication: 2,063 x 2,063 digits fits; one more digit each wraps the int32 limit.
    assert int(mul_task.default_step_limit(_ns(len_a=2063, len_b=2063))) \
        == mul_limit(2063, 2063) <= INT32_MAX
    assert int(mul_task.default_step_limit(_ns(len_a=2064, len_b=2064))) < 0  # what it prevents
    npigym.make("Multiplication-v0", max_digits=2063)
    with pytest.raises(ValueError, match="max_digits and max_multiplier_digits too large"):
        npigym.make("Multiplication-v0", max_digits=2064)
    npigym.make("Multiplication-v0", max_digits=65_000, max_multiplier_digits=1)
    # DotProduct: 1 pair of 2,063-digit numbers, or 9 pairs of 687 digits.
    for pairs, digits in [(1, 2063), (9, 687)]:
        d = _ns(len_x=[digits] * pairs, len_y=[digits] * pairs, num_pairs=pairs)
        assert int(dot_task.default_step_limit(d)) == dot_limit(pairs, digits) <= INT32_MAX
        npigym.make("DotProduct-v0", min_length=1, max_length=pairs, max_digits=digits)
        with pytest.raises(ValueError, match="max_length and max_digits too large"):
            npigym.make("DotProduct-v0", min_length=1, max_length=pairs, max_digits=digits + 1)


@pytest.mark.parametrize("env_id", [i for i in IDS if is_program_env(i)])
def test_time_limit__bounded_by_int32(env_id):
    small = {n: v[0] for n, v in SMALL_SIZES[family(env_id)].items()}
    assert npigym.make(env_id, time_limit=INT32_MAX, **small).time_limit == INT32_MAX
    for bad in (INT32_MAX + 1, np.int64(2**40)):  # the numpy one used to wrap to 0 silently
        with pytest.raises(ValueError, match="time_limit must be at most"):
            npigym.make(env_id, time_limit=bad, **small)
