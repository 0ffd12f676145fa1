"""The plain-Python reference (benchmarks/python_reference.py) agrees with Addition-v0 step by step.

The reference was written from the specification, not ported from the JAX code, so agreement
here cross-checks the JAX environment's semantics as much as it validates the baseline.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Callable, List, Sequence, Tuple

import jax
import numpy as np
import pytest

from npigym.envs.addition import Addition, ProblemGenerator

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import python_reference as ref

MAX_DIGITS = 4
PROBLEMS = [(0, 0), (5, 7), (96, 125), (999, 1), (1234, 8766), (4321, 0), (9999, 9999),
            (7, 3058)]


class JaxSide:
    """A JAX Addition env with jitted step and expert, reset onto a chosen problem."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        # The step does not read the generator, only the pad's width, so one compiled step
        # serves every problem of the same max_digits.
        self.env = Addition(generator=ProblemGenerator([(1, 1)], max_digits=MAX_DIGITS),
                            **kwargs)
        self.step = jax.jit(self.env.step)
        self.expert = jax.jit(self.env.expert_action)

    def reset(self, a: int, b: int):
        env = Addition(generator=ProblemGenerator([(a, b)], max_digits=MAX_DIGITS),
                       **self.kwargs)
        return env.reset(jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def sparse() -> JaxSide:
    return JaxSide()


@pytest.fixture(scope="module")
def dense() -> JaxSide:
    return JaxSide(reward="dense", invalid_action_penalty=0.25)


def _where(context: str, step: int, action: Sequence[int]) -> str:
    return f"{context}, step {step}, action {tuple(int(x) for x in action)}"


def assert_same_state(state, env: ref.PythonAddition, where: str) -> None:
    """The JAX state's pad, pointers, call stack and step count equal the reference's."""
    state = jax.device_get(state)
    np.testing.assert_array_equal(state.task.pad, np.asarray(env.pad),
                                  err_msg=f"pad differs at {where}")
    np.testing.assert_array_equal(state.task.pointers, env.pointers,
                                  err_msg=f"pointers differ at {where}")
    depth = int(state.stack.depth)
    assert depth == len(env.stack) - 1, f"stack depth differs at {where}"
    frames = [(f.program, f.args, f.steps) for f in env.stack]
    jax_frames = [(int(state.stack.program[i]), tuple(int(x) for x in state.stack.args[i]),
                   int(state.stack.steps[i])) for i in range(depth + 1)]
    assert jax_frames == frames, f"call stack differs at {where}"
    assert int(state.step_count) == env.step_count, f"step count differs at {where}"
    assert int(state.step_limit) == env.step_limit, f"step limit differs at {where}"


def assert_same_observation(obs, expected: ref.Observation, where: str) -> None:
    obs = jax.device_get(obs)
    got = ref.Observation(int(obs.program), tuple(int(x) for x in obs.args), int(obs.depth),
                          tuple(bool(x) for x in obs.action_mask),
                          tuple(int(x) for x in obs.local))
    assert got == expected, f"observation differs at {where}:\n  jax {got}\n  ref {expected}"


def assert_same_timestep(timestep, expected: ref.TimeStep, where: str) -> None:
    ts = jax.device_get(timestep)
    assert_same_observation(ts.observation, expected.observation, where)
    got = {
        "step_type": int(ts.step_type),
        "discount": float(ts.discount),
        "invalid_action": bool(ts.extras["invalid_action"]),
        "returned_program": int(ts.extras["returned_program"]),
        "postcondition": bool(ts.extras["postcondition"]),
        "success": bool(ts.extras["success"]),
        "primitive_steps": int(ts.extras["primitive_steps"]),
    }
    want = {k: (int(v) if k == "step_type" else v) for k, v in expected._asdict().items()
            if k in got}
    assert got == want, f"timestep differs at {where}:\n  jax {got}\n  ref {want}"
    np.testing.assert_allclose(float(ts.reward), expected.reward, atol=1e-6,
                               err_msg=f"reward differs at {where}")


def run_both(side: JaxSide, env: ref.PythonAddition, problem: Tuple[int, int],
             choose: Callable[[ref.Observation], Sequence[int]], max_steps: int,
             context: str) -> List[ref.TimeStep]:
    """Reset both sides onto ``problem`` and step them with ``choose`` until the episode ends."""
    state, timestep = side.reset(*problem)
    observation = env.reset(*problem)
    assert_same_observation(timestep.observation, observation, f"{context}, reset")
    assert_same_state(state, env, f"{context}, reset")
    timesteps = []
    for t in range(max_steps):
        action = choose(observation)
        state, timestep = side.step(state, np.asarray(action, np.int32))
        expected = env.step(action)
        where = _where(context, t, action)
        assert_same_timestep(timestep, expected, where)
        assert_same_state(state, env, where)
        timesteps.append(expected)
        observation = expected.observation
        if expected.last():
            break
    return timesteps


@pytest.mark.parametrize("problem", PROBLEMS)
def test_expert_traces_agree(sparse: JaxSide, problem: Tuple[int, int]) -> None:
    """Both experts choose the same call at every step and both envs move the same way."""
    env = ref.PythonAddition(max_digits=MAX_DIGITS)
    state, _ = sparse.reset(*problem)
    env.reset(*problem)
    for t in range(env.step_limit):
        action = env.expert_action()
        jax_action = tuple(int(x) for x in sparse.expert(state))
        assert jax_action == action, (
            f"expert differs on {problem} at step {t}: jax {jax_action}, reference {action}")
        state, timestep = sparse.step(state, np.asarray(action, np.int32))
        expected = env.step(action)
        where = _where(f"expert on {problem}", t, action)
        assert_same_timestep(timestep, expected, where)
        assert_same_state(state, env, where)
        if expected.last():
            break
    assert expected.success and expected.discount == 0.0 and expected.reward == 1.0
    a, b = problem
    out = "".join(str(ref.digit_of(v)) for v in env.pad[ref.OUT] if ref.BLANK < v < ref.SENTINEL)
    assert int(out) == a + b


def _random_valid(rng: random.Random, root_return: float) -> Callable[[ref.Observation], tuple]:
    """Random valid calls; RETURN from the root only with probability ``root_return`` (else
    episodes end within a few steps and deep frames and truncation are rarely reached)."""

    def choose(observation: ref.Observation) -> tuple:
        while True:
            action = ref.random_valid_action(observation, rng)
            ends = action[0] == ref.RETURN and observation.depth == 0
            if not ends or rng.random() < root_return:
                return action

    return choose


def _random_mixed(rng: random.Random) -> Callable[[ref.Observation], tuple]:
    """Half the time uniform over the whole action space (mostly invalid calls), else a random
    valid call."""
    valid = _random_valid(rng, root_return=0.02)

    def choose(observation: ref.Observation) -> tuple:
        if rng.random() < 0.5:
            return tuple(rng.randrange(n) for n in ref.ACTION_SIZES)
        return valid(observation)

    return choose


def test_random_valid_actions_agree(sparse: JaxSide) -> None:
    env = ref.PythonAddition(max_digits=MAX_DIGITS)
    episodes = []
    for seed in range(4):
        rng = random.Random(seed)
        for problem in PROBLEMS[seed % 2::2]:
            episodes.append(run_both(sparse, env, problem, _random_valid(rng, root_return=0.05),
                                     200, f"random valid actions (seed {seed}) on {problem}"))
    # The sequences reach what the comparison should cover.
    ends = [steps[-1] for steps in episodes]
    assert any(ts.last() and ts.discount == 1.0 for ts in ends), "no episode was truncated"
    assert any(ts.discount == 0.0 for ts in ends), "no episode terminated"
    every = [ts for steps in episodes for ts in steps]
    assert any(ts.observation.depth == 2 for ts in every), "never reached CARRY's depth"
    assert any(ts.postcondition for ts in every) and any(
        ts.returned_program >= 0 and not ts.postcondition for ts in every)


@pytest.mark.parametrize("seed", range(2))
def test_random_actions_agree_dense_reward_and_penalty(dense: JaxSide, seed: int) -> None:
    """Arbitrary actions (most invalid) and the dense reward with an invalid-action penalty."""
    rng = random.Random(100 + seed)
    env = ref.PythonAddition(max_digits=MAX_DIGITS, reward="dense", invalid_action_penalty=0.25)
    invalid = 0
    for problem in PROBLEMS[seed::3]:
        steps = run_both(dense, env, problem, _random_mixed(rng), 120,
                         f"random actions, dense (seed {seed}) on {problem}")
        invalid += sum(ts.invalid_action for ts in steps)
    assert invalid > 0


def test_expert_moves_on_dense_reward(dense: JaxSide) -> None:
    """The expert's trace under the dense reward: progress rewards sum to 1 plus the success."""
    env = ref.PythonAddition(max_digits=MAX_DIGITS, reward="dense", invalid_action_penalty=0.25)
    steps = run_both(dense, env, (1234, 8766), lambda o: env.expert_action(), 200,
                     "expert, dense, on (1234, 8766)")
    assert steps[-1].success
    assert sum(ts.reward for ts in steps) == pytest.approx(2.0)


def test_reference_expert_solves_random_problems() -> None:
    env = ref.PythonAddition(min_digits=1, max_digits=12, seed=3)
    for _ in range(200):
        env.reset()
        while True:
            timestep = env.step(env.expert_action())
            assert not timestep.invalid_action
            if timestep.last():
                break
        assert timestep.success, f"expert failed on {env.operands}"


def test_reference_random_problems_fit_sizes() -> None:
    env = ref.PythonAddition(min_digits=2, max_digits=5, seed=0)
    sizes = set()
    for _ in range(300):
        a, b = env.random_problem()
        n = max(len(str(a)), len(str(b)))
        assert 2 <= n <= 5
        sizes.add(n)
    assert sizes == {2, 3, 4, 5}
