"""The machine's skill mode: a trained (here hand-written) policy as one macro action."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from npigym.envs.addition import Addition
from npigym.envs.dot_product import DotProduct, VectorGenerator
from npigym.envs.machine.library import SKILL, ProgramLibrary
from npigym.envs.machine.skill import Skill
from npigym.envs.multiplication import Multiplication, ProblemGenerator
from npigym.envs.multiplication import constants as mc
from npigym.envs.sorting import Sorting
from tests.envs.composition_helpers import (
    add_macro_act,
    add_skill,
    episodes,
    mul_act,
    mul_skill,
    row_int,
    zero_memory,
)

PROBLEMS = [(96, 125), (7, 8), (999, 999), (123, 45), (5, 909)]


@pytest.fixture(scope="module")
def skilled():
    return Multiplication(generator=ProblemGenerator(PROBLEMS), skills={"ADD": add_skill()})


def test_binding_puts_the_program_in_skill_mode(skilled):
    assert skilled.library["ADD"].mode == SKILL
    assert skilled.library.skill_programs == ("ADD",)
    assert "skill_steps" in jax.eval_shape(skilled.reset, jax.random.PRNGKey(0))[1].extras


def test_a_skill_call_is_one_macro_action_reported_like_a_builtin(skilled):
    state, ts = jax.jit(skilled.reset)(jax.random.PRNGKey(1))
    state, ts = jax.jit(skilled.step)(state, jnp.asarray([mc.ADD, 0, 0, 0]))
    assert not bool(ts.extras["invalid_action"])
    assert int(ts.extras["returned_program"]) == mc.ADD
    assert bool(ts.extras["postcondition"])
    # ADD over d columns: ADD1 and LSHIFT per column and the empty column's RETURN.
    assert int(ts.extras["skill_steps"]) >= 3
    assert int(ts.extras["primitive_steps"]) > int(ts.extras["skill_steps"])
    assert int(state.stack.depth) == 0 and int(state.step_count) == 1


def test_the_expert_with_a_skill_solves_every_problem_under_jit_and_vmap(skilled):
    out = episodes(skilled, 16)
    assert out["success"].all() and (out["invalid"] == 0).all()
    assert (out["skill_steps"] > 0).all()
    pads = out["state"].task.pad
    for pad in pads:
        assert row_int(pad[mc.ACC]) == row_int(pad[mc.A]) * row_int(pad[mc.B])


def test_a_skill_call_equals_the_policy_executing_the_frame_step_by_step(skilled):
    """The same policy run by the agent inside ADD's frames (ADD agent-executed, its callees
    builtin as in the skill's Addition-macro) leaves the same pads, call for call."""
    framed = Multiplication(generator=ProblemGenerator(PROBLEMS),
                            modes={"ADD": "agent", "ADD1": "builtin", "LSHIFT": "builtin"})

    def by_frames(state):
        obs = framed._observe(state.task, state.stack)
        in_add = obs.program == mc.ADD
        add_action, _ = add_macro_act({}, state.stack.steps[state.stack.depth], obs,
                                      jnp.asarray(False), jnp.asarray(False))
        mul_action, _ = mul_act({}, 0, obs, jnp.asarray(False), jnp.asarray(False))
        return jnp.where(in_add, add_action, mul_action)

    a = episodes(skilled, 16, seed=3, policy=lambda s: mul_act({}, 0, skilled._observe(
        s.task, s.stack), jnp.asarray(False), jnp.asarray(False))[0])
    b = episodes(framed, 16, seed=3, policy=by_frames)
    assert a["success"].all() and b["success"].all()
    np.testing.assert_array_equal(a["state"].task.pad, b["state"].task.pad)
    np.testing.assert_array_equal(a["state"].task.add_pointers, b["state"].task.add_pointers)
    # One host step per skill call against one per decision inside the frame.
    np.testing.assert_array_equal(b["steps"], a["steps"] + a["skill_steps"])


def test_a_skill_out_of_budget_fails_its_call():
    env = Multiplication(generator=ProblemGenerator([(999, 9)]),
                         skills={"ADD": add_skill(budget=2)})
    state, _ = env.reset(jax.random.PRNGKey(0))
    _, ts = jax.jit(env.step)(state, jnp.asarray([mc.ADD, 0, 0, 0]))
    assert int(ts.extras["skill_steps"]) == 2
    assert not bool(ts.extras["postcondition"])
    assert int(ts.extras["returned_program"]) == mc.ADD


def test_a_skill_nested_in_a_skill():
    """DOT calls a MUL skill whose own env calls an ADD skill: three generations."""
    env = DotProduct(generator=VectorGenerator([12, 7, 305], [34, 56, 9]),
                     skills={"MUL": mul_skill(add_skill())})
    out = episodes(env, 2)
    assert out["success"].all()
    assert row_int(out["state"].task.work[0, 0]) == 12 * 34 + 7 * 56 + 305 * 9
    assert (out["steps"] == 6).all()  # MUL, NEXT_PAIR, MUL, NEXT_PAIR, MUL, RETURN
    assert (out["skill_steps"] > 20).all()


def test_bad_bindings_fail_before_compiling():
    with pytest.raises(ValueError, match="no program 'SUB'"):
        Multiplication(skills={"SUB": add_skill()})
    with pytest.raises(ValueError, match="primitive"):
        Multiplication(skills={"COMMIT": add_skill()})
    with pytest.raises(TypeError, match="must be an npigym Skill"):
        Multiplication(skills={"ADD": "not loaded"})
    with pytest.raises(ValueError, match="no skill is bound"):
        Multiplication(modes={"ADD": "skill"})
    # A skill of another task: Sorting's BUBBLESORT policy where Addition's ADD runs.
    sorter = Skill(Sorting(max_length=3, modes="macro"), "BUBBLESORT", params={},
                   act=add_macro_act, initial_memory=zero_memory, name="sorter")
    with pytest.raises(ValueError, match="runs on Sorting's task state"):
        Multiplication(skills={"ADD": sorter})
    # A skill's program must be one its policy executes, in its env's library.
    with pytest.raises(ValueError, match="is 'builtin' in its env"):
        Skill(Addition(modes="macro"), "ADD1", {}, add_macro_act, zero_memory)
    with pytest.raises(ValueError, match="no program 'MAX'"):
        Skill(Addition(), "MAX", {}, add_macro_act, zero_memory)
    with pytest.raises(ValueError, match="budget"):
        Skill(Addition(), "ADD", {}, add_macro_act, zero_memory, budget=0)


def test_arguments_must_match():
    from npigym.envs.machine import env as machine_env
    from npigym.envs.machine.library import Arg, Program

    library = ProgramLibrary((Program("P", (Arg("x", ("a", "b")),), calls=("Q",)),
                              Program("Q", mode="primitive"),
                              Program("ROOT", calls=("P",))), "ROOT")
    with pytest.raises(ValueError, match="takes arguments"):
        machine_env._bind_skills(library, {"P": add_skill()})
