"""The program machine on a toy task: calls, returns, builtins, invalid actions, limits."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jumanji.types import StepType

from npigym.envs.machine.env import computed_once
from tests.envs.machine.toy_task import ADD2, COUNT, INC, RETURN, CounterEnv


def act(program, a0=0):
    return jnp.array([program, a0, 0, 0], jnp.int32)


@pytest.fixture(scope="module")
def env():
    return CounterEnv()


@pytest.fixture(scope="module")
def step(env):
    return jax.jit(env.step)


@pytest.fixture(scope="module")
def start(env):
    return jax.jit(env.reset)(jax.random.PRNGKey(0))


def run(step, state, actions):
    out = []
    for a in actions:
        state, timestep = step(state, a)
        out.append((state, timestep))
    return out


def test_machine__reset_starts_the_root_frame(env, start):
    state, timestep = start
    assert timestep.step_type == StepType.FIRST
    assert int(state.stack.depth) == 0 and int(state.stack.program[0]) == COUNT
    obs = timestep.observation
    assert int(obs.program) == COUNT and int(obs.depth) == 0
    np.testing.assert_array_equal(obs.action_mask, [True, True, True, False])  # RETURN INC ADD2
    assert obs.full is None
    env.observation_spec.validate(obs)


def test_machine__call_pushes_and_return_pops_with_postcondition(env, step, start):
    state, _ = start
    (s1, t1), (s2, t2), (s3, t3), (s4, t4) = run(
        step, state, [act(ADD2), act(INC, 1), act(INC, 1), act(RETURN)])
    assert int(s1.stack.depth) == 1 and int(t1.observation.program) == ADD2
    np.testing.assert_array_equal(t1.observation.action_mask, [True, True, False, False])
    assert int(s1.stack.steps[0]) == 1  # the caller counted its call
    assert int(s3.task.count) == 2 and int(s3.stack.steps[1]) == 2
    assert int(s4.stack.depth) == 0 and int(t4.observation.program) == COUNT
    assert int(t4.extras["returned_program"]) == ADD2 and bool(t4.extras["postcondition"])
    assert t4.step_type == StepType.MID
    for t in (t1, t2, t3):
        assert int(t.extras["returned_program"]) == -1 and not bool(t.extras["invalid_action"])


def test_machine__postcondition_fails_when_the_program_did_not_do_its_job(step, start):
    state, _ = start
    _, (_, returned) = run(step, state, [act(ADD2), act(RETURN)])
    assert int(returned.extras["returned_program"]) == ADD2
    assert not bool(returned.extras["postcondition"])


def test_machine__root_return_terminates_and_pays_on_success(env, step):
    state, _ = env.reset(jax.random.PRNGKey(3))
    target = int(state.task.target)
    actions = [act(INC, 1)] * target + [act(RETURN)]
    *_, (final, timestep) = run(step, state, actions)
    assert timestep.step_type == StepType.LAST and float(timestep.discount) == 0.0
    assert bool(timestep.extras["success"]) and float(timestep.reward) == 1.0
    # Returning early: terminated, no reward.
    _, (early_state, early) = run(step, state, [act(INC, 1), act(RETURN)])
    assert early.step_type == StepType.LAST and float(early.discount) == 0.0
    assert not bool(early.extras["success"]) and float(early.reward) == 0.0


@pytest.mark.parametrize("action, why", [
    (act(COUNT), "COUNT may not call itself (masked)"),
    (act(INC, 0), "INC does not allow amount 0"),
    (act(INC, 7), "amount 7 is outside the argument's range"),
    (act(INC, -1), "negative argument"),
    (act(42), "program id outside the library"),
    (act(-3), "negative program id"),
])
def test_machine__invalid_actions_are_no_ops(step, start, action, why):
    state, _ = start
    new, timestep = step(state, action)
    assert bool(timestep.extras["invalid_action"]), why
    chex.assert_trees_all_equal(new.task, state.task)
    chex.assert_trees_all_equal(new.stack, state.stack)
    assert int(new.step_count) == int(state.step_count) + 1  # still counts towards the limit
    assert float(timestep.reward) == 0.0 and timestep.step_type == StepType.MID


@pytest.mark.parametrize("action", [[RETURN, -1, 0, 0], [RETURN, 7, 9, 5], [ADD2, 2, -4, 99]])
def test_machine__arguments_a_program_does_not_take_are_ignored(step, start, action):
    state, _ = start
    _, timestep = step(state, jnp.asarray(action, jnp.int32))
    assert not bool(timestep.extras["invalid_action"])


def test_machine__rejected_primitive_is_a_no_op_with_penalty():
    env = CounterEnv(invalid_action_penalty=0.25)
    state, _ = env.reset(jax.random.PRNGKey(0))
    state = state.replace(task=state.task._replace(count=jnp.int32(8)))
    new, timestep = env.step(state, act(INC, 2))  # 10 > LIMIT
    assert bool(timestep.extras["invalid_action"])
    assert int(new.task.count) == 8 and float(timestep.reward) == -0.25


def test_machine__step_limit_truncates_with_discount_one():
    env = CounterEnv(time_limit=2)
    state, _ = env.reset(jax.random.PRNGKey(0))
    state, t1 = env.step(state, act(COUNT))  # invalid, still a step
    state, t2 = env.step(state, act(INC, 1))
    assert t1.step_type == StepType.MID
    assert t2.step_type == StepType.LAST and float(t2.discount) == 1.0
    assert not bool(t2.extras["success"])


def test_machine__default_step_limit_comes_from_the_instance(env, start):
    state, _ = start
    assert int(state.step_limit) == 3 * int(state.task.target) + 4


def test_machine__builtin_runs_the_subprogram_in_one_step():
    env = CounterEnv(modes={"ADD2": "builtin"})
    state, _ = env.reset(jax.random.PRNGKey(1))
    new, timestep = env.step(state, act(ADD2))
    assert int(new.task.count) == 2 and int(new.stack.depth) == 0
    assert int(new.stack.steps[0]) == 1
    assert int(timestep.extras["returned_program"]) == ADD2
    assert bool(timestep.extras["postcondition"])
    assert int(timestep.extras["primitive_steps"]) == 2


def test_machine__inline_program_exposes_its_callees_and_has_no_expert():
    env = CounterEnv(modes="flat")
    state, timestep = env.reset(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(timestep.observation.action_mask, [True, True, False, False])
    assert not env.has_expert
    with pytest.raises(ValueError, match="inlines"):
        env.expert_action(state)


@pytest.mark.parametrize("modes", [None, "macro"])
def test_machine__expert_solves_every_instance(modes):
    env = CounterEnv(modes=modes)

    def episode(key):
        state, timestep = env.reset(key)

        def body(carry):
            s, t = carry
            return env.step(s, env.expert_action(s))

        _, timestep = jax.lax.while_loop(lambda c: ~c[1].last(), body, (state, timestep))
        return timestep.extras["success"]

    solved = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.PRNGKey(0), 64))
    assert bool(jnp.all(solved))


def test_machine__dense_reward_adds_progress_differences():
    env = CounterEnv(reward="dense")
    state, _ = env.reset(jax.random.PRNGKey(4))
    target = int(state.task.target)
    total = 0.0
    for a in [act(INC, 1)] * target + [act(RETURN)]:
        state, timestep = env.step(state, a)
        total += float(timestep.reward)
    assert total == pytest.approx(2.0)  # progress 0 -> 1, plus success


def test_machine__jit_compiles_once_and_vmaps(env):
    reset = jax.jit(chex.assert_max_traces(env.reset, n=1))
    step = jax.jit(chex.assert_max_traces(env.step, n=1))
    state, _ = reset(jax.random.PRNGKey(0))
    for a in (act(INC, 1), act(ADD2), act(RETURN)):
        state, _ = step(state, a)
    states, timesteps = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 5))
    actions = jnp.tile(act(INC, 1), (5, 1))
    states, timesteps = jax.vmap(env.step)(states, actions)
    chex.assert_shape(timesteps.reward, (5,))
    chex.assert_shape(states.stack.program, (5, env.max_depth))


@pytest.mark.parametrize("kwargs, match", [
    ({"reward": "shaped"}, "reward"),
    ({"observation": "pixels"}, "observation"),
    ({"time_limit": 0}, "time_limit"),
    ({"time_limit": 2.5}, "time_limit"),
    ({"invalid_action_penalty": float("nan")}, "invalid_action_penalty"),
    ({"render_mode": "video"}, "render_mode"),
])
def test_machine__bad_knobs_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CounterEnv(**kwargs)


def test_machine__full_observation_needs_the_task_to_supply_one():
    with pytest.raises(NotImplementedError, match="full view"):
        CounterEnv(observation="full")


def test_computed_once_is_the_identity_on_flags() -> None:
    flags = jnp.array([True, False, True])
    out = jax.jit(jax.vmap(computed_once))(flags)
    assert out.dtype == jnp.bool_
    np.testing.assert_array_equal(out, flags)
