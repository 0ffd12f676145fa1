"""Max-v0: NPI's MAX = BUBBLESORT then RJMP, a program added on top of a sorting core."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npigym
from npigym.envs.sorting import Max
from npigym.envs.sorting import constants as c
from npigym.envs.sorting import task as sorting_task
from tests.envs.sorting.conftest import MAX_ARRAYS
from tests.envs.sorting.expert_runner import key_for, make_env, run_batch


def act(program):
    return jnp.array([program, 0, 0, 0], jnp.int32)


@pytest.fixture(scope="module")
def env(max_env):
    return max_env


@pytest.fixture(scope="module")
def jitted(max_jitted):
    return max_jitted


@pytest.mark.parametrize("array", MAX_ARRAYS)
def test_max__expert_succeeds_with_builtin_skills_and_every_postcondition_holds(
        env, jitted, array):
    assert env.library["BUBBLESORT"].mode == "builtin" and env.library["RJMP"].mode == "agent"
    assert env.library.root == c.MAX
    reset, step, expert = jitted
    state, timestep = reset(key_for(env, array))
    returns = []
    while not timestep.last():
        state, timestep = step(state, expert(state))
        if int(timestep.extras["returned_program"]) >= 0:
            returns.append(bool(timestep.extras["postcondition"]))
    assert bool(timestep.extras["success"]) and all(returns)
    m = len(array) - 1
    # MAX: BUBBLESORT (builtin), RJMP; RJMP: m builtin RSHIFTs, RETURN; MAX's RETURN.
    assert int(state.step_count) == m + 4 and len(returns) == 1 + m + 2
    assert np.asarray(state.task.pointers).tolist() == [m, m, m]
    np.testing.assert_array_equal(np.asarray(state.task.cells)[: m + 1] - 1, sorted(array))


def test_max__hierarchical_expert_steps_in_closed_form():
    results = run_batch(make_env("max", 12), seed=4, count=4)
    for r in results:
        assert r["final"] == sorted(r["initial"]) and r["invalid"] == 0
        a = np.asarray(r["initial"])
        inversions = int(np.triu(a[:, None] > a[None, :], 1).sum())
        expected = sorting_task.expert_steps(12, inversions) + sorting_task.rjmp_steps(12)
        assert r["steps"] == int(expected) and r["pointers"] == [11, 11, 11]
    env = make_env("max", 12)
    limit = jax.jit(env.default_step_limit)(env.generator(jax.random.PRNGKey(0)))
    m = 11
    assert int(limit) == 2 * (12 * m * m + 5 * m + 1 + m * (m + 1) // 2 + 4 * m + 4)


@pytest.mark.parametrize("actions, expected", [
    # MAX returns after sorting, before RJMP: the pointers are not on the maximum.
    ([c.BUBBLESORT, c.RETURN], [("BUBBLESORT", True), ("MAX", False)]),
    # RJMP first (pointers 1 and 2 to the right end) without sorting: 9 is not at the end.
    ([c.RJMP] + [c.RSHIFT] * 3 + [c.RETURN, c.RETURN],
     [("RSHIFT", True)] * 3 + [("RJMP", True), ("MAX", False)]),
    # RJMP returning early.
    ([c.BUBBLESORT, c.RJMP, c.RSHIFT, c.RETURN], [("BUBBLESORT", True), ("RSHIFT", True),
                                                  ("RJMP", False)]),
    ([c.BUBBLESORT, c.RJMP] + [c.RSHIFT] * 3 + [c.RETURN, c.RETURN],
     [("BUBBLESORT", True)] + [("RSHIFT", True)] * 3 + [("RJMP", True), ("MAX", True)]),
])
def test_max__postconditions(env, jitted, actions, expected):
    reset, step, _ = jitted
    state, _ = reset(key_for(env, [9, 2, 7, 1]))
    got = []
    for a in actions:
        state, timestep = step(state, act(a))
        assert not bool(timestep.extras["invalid_action"])
        if int(timestep.extras["returned_program"]) >= 0:
            got.append((env.library.names[int(timestep.extras["returned_program"])],
                        bool(timestep.extras["postcondition"])))
    assert got == expected
    assert bool(timestep.last()) == (expected[-1][0] == "MAX")
    assert bool(timestep.extras["success"]) == (expected[-1] == ("MAX", True))


def test_max__macro_and_flat_posings():
    macro = Max(max_length=5, modes="macro")
    assert macro.library["RJMP"].mode == "builtin"
    flat = npigym.make("Max-v0", max_length=5, modes="flat")
    mask = np.asarray(jax.jit(flat.reset)(jax.random.PRNGKey(0))[1].observation.action_mask)
    assert mask.tolist() == [True, True, True] + [False] * 9  # RETURN, MOVE_PTR, SWAP


def test_max__renders_its_stack(env, jitted):
    reset, step, _ = jitted
    state, _ = reset(key_for(env, [3, 3]))
    state, _ = step(state, act(c.RJMP))
    text = env.render(state)
    assert "MAX  [1 calls]" in text and "RJMP  [0 calls]  <- acting" in text
