"""The sorting expert: 100 % at every length, its step count in closed form, its postconditions,
and the macro and flat posings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npigym
from npigym.envs.machine.library import PRIMITIVE
from npigym.envs.sorting import ArrayGenerator, RandomGenerator, Sorting
from npigym.envs.sorting import constants as c
from npigym.envs.sorting import task as sorting_task
from npigym.envs.sorting.generator import make_pad
from tests.envs.sorting.expert_runner import (
    draw,
    key_for,
    make_env,
    run_batch,
    run_in_subprocess,
    run_pads,
)


def inversions(values):
    a = np.asarray(values)
    return int(np.triu(a[:, None] > a[None, :], 1).sum())


def check_results(results, length, extra_steps=0):
    for r in results:
        assert len(r["initial"]) == length
        assert r["final"] == sorted(r["initial"]), "the expert left the array unsorted"
        assert r["invalid"] == 0, "the expert made an invalid primitive call"
        expected = int(sorting_task.expert_steps(length, inversions(r["initial"]))) + extra_steps
        assert r["steps"] == expected, "the step count is not the closed form"
        assert r["steps"] <= r["limit"] // 2, "the expert needs more than half the default limit"


LENGTHS = {2: 64, 20: 16, 60: 4, 200: 2}  # instances per length


def test_expert__sorts_every_instance():
    """Random arrays of each length, in one row width so that one compile serves them all."""
    width = max(LENGTHS)
    pads = [draw(RandomGenerator(n, n), seed=n, count=k, width=width)
            for n, k in LENGTHS.items()]
    pads = jax.tree.map(lambda *x: jnp.concatenate(x), *pads)
    results = run_pads(Sorting(max_length=width), pads)
    start = 0
    for n, k in LENGTHS.items():
        check_results(results[start: start + k], n)
        if n >= 20:
            assert len({tuple(r["initial"]) for r in results[start: start + k]}) == k
        start += k


@pytest.mark.slow
def test_expert__sorts_length_1000():
    """12 million calls per instance: run in a subprocess whose XLA runs the loop as one
    kernel (see expert_runner)."""
    results = run_in_subprocess("sorting", 1000, count=2, seed=1000)
    check_results(results, 1000)
    for r in results:
        assert r["pointers"] == [0, 0, 999]


def test_expert__apply_primitive_ignores_program_ids_that_are_not_primitives():
    """The runner relies on it (no row-wide select per call)."""

    @jax.jit
    def apply_all(programs):
        pad = make_pad(jnp.array([4, 2, 7, 1]), 4, jnp.int8)
        pad = pad.replace(pointers=jnp.array([1, 2, 0], jnp.int32))
        new, _ = jax.vmap(lambda p: sorting_task.apply_primitive(
            pad, p, jnp.array([1, 1, 0]), track_inversions=True))(programs)
        return jax.tree.map(lambda a, b: jnp.all(a == b), new, pad)

    same = apply_all(jnp.arange(c.SWAP + 1, c.NUM_MAX_PROGRAMS))
    assert all(bool(x) for x in jax.tree.leaves(same))


def test_expert__worst_case_is_a_reversed_array_and_half_the_default_limit():
    array = [5, 4, 3, 2, 1, 0]
    pad = jax.tree.map(lambda x: x[None], make_pad(jnp.array(array), 6, jnp.int8))
    (r,) = run_pads(make_env("sorting", 6), pad)
    assert r["final"] == sorted(array)
    m = len(array) - 1
    assert r["steps"] == 12 * m * m + 5 * m + 1 + m * (m + 1) // 2 == r["limit"] // 2


def expert_episodes(env):
    """(keys) -> success, steps, every RETURN's postcondition held, returns per program, the
    episode's summed reward."""

    def run(key):
        state, timestep = env.reset(key)
        counts = jnp.zeros((env.library.num_programs,), jnp.int32)

        def body(carry):
            s, t, ok, counts, total = carry
            s, t = env.step(s, env.expert_action(s))
            returned = t.extras["returned_program"]
            ok &= (returned < 0) | t.extras["postcondition"]
            counts = counts.at[jnp.maximum(returned, 0)].add((returned >= 0).astype(jnp.int32))
            return s, t, ok, counts, total + t.reward

        init = (state, timestep, jnp.array(True), counts, jnp.float32(0))
        state, timestep, ok, counts, total = jax.lax.while_loop(
            lambda carry: ~carry[1].last(), body, init)
        return timestep.extras["success"], state.step_count, ok, counts, total

    return jax.jit(jax.vmap(run))


def test_expert__every_return_meets_its_postcondition_and_dense_reward_adds_up():
    """Dense reward: a sorted episode sums to 1 + inversions / (n (n - 1) / 2)."""
    env = Sorting(min_length=1, max_length=7, max_value=3, reward="dense")  # many ties
    keys = jax.random.split(jax.random.PRNGKey(11), 16)
    success, steps, ok, counts, totals = expert_episodes(env)(keys)
    steps = np.asarray(steps)
    assert bool(jnp.all(success)) and bool(jnp.all(ok))
    returned = np.asarray(counts).sum(0)
    composite = [i for i, p in enumerate(env.library.programs) if p.mode != PRIMITIVE]
    assert all(returned[i] > 0 for i in composite), dict(zip(env.library.names, returned))
    # The fast runner of the long-array tests takes exactly the machine's steps.
    for b, r in enumerate(run_batch(env, seed=11, count=len(keys))):
        assert r["steps"] == int(steps[b]) and r["final"] == sorted(r["initial"])
    pads = jax.tree.map(np.asarray, jax.jit(jax.vmap(env.generator))(keys))
    totals = np.asarray(totals)
    for b in range(len(keys)):
        n = int(pads.length[b])
        expected = 1.0 + inversions(pads.cells[b, :n]) / max(n * (n - 1) // 2, 1)
        assert float(totals[b]) == pytest.approx(expected, abs=1e-5)


def test_expert__macro_posing_runs_bubble_and_reset_as_builtins():
    env = npigym.make("Sorting-macro-v0", generator=ArrayGenerator([[5, 1, 4, 1, 0], [2, 1]]))
    reset, step, expert = jax.jit(env.reset), jax.jit(env.step), jax.jit(env.expert_action)
    for array in ([5, 1, 4, 1, 0], [2, 1]):
        state, timestep = reset(key_for(env, array))
        returned, primitives = [], 0
        while not timestep.last():
            state, timestep = step(state, expert(state))
            primitives += int(timestep.extras["primitive_steps"])
            if int(timestep.extras["returned_program"]) >= 0:
                returned.append((env.library.names[int(timestep.extras["returned_program"])],
                                 bool(timestep.extras["postcondition"])))
        m = len(array) - 1
        assert bool(timestep.extras["success"]) and int(state.step_count) == 3 * m + 1
        assert returned == [("BUBBLE", True), ("RESET", True)] * m + [("BUBBLESORT", True)]
        # Primitives inside the builtins: per pass 1 + 2 (m - 1) + 1 moves, 2 m for RESET,
        # PTR 3 RIGHT, and a SWAP per inversion.
        assert primitives == m * (4 * m + 1) + inversions(array)


def test_expert__flat_posing_is_solved_by_the_experts_primitives(fixed_env, fixed_jitted):
    reset, step, expert = fixed_jitted
    key = key_for(fixed_env, [3, 1, 2, 0])
    state, timestep = reset(key)
    primitives = []
    while not timestep.last():
        action = expert(state)
        if int(action[0]) in (c.MOVE_PTR, c.SWAP):
            primitives.append(action)
        state, timestep = step(state, action)
    flat = npigym.make("Sorting-flat-v0", generator=fixed_env.generator)
    state, timestep = jax.jit(flat.reset)(key)
    with pytest.raises(ValueError, match="inlines"):
        flat.expert_action(state)
    assert np.asarray(timestep.observation.action_mask).tolist() == [True] * 3 + [False] * 7
    step = jax.jit(flat.step)
    for action in primitives:
        state, timestep = step(state, action)
        assert not bool(timestep.extras["invalid_action"])
    state, timestep = step(state, jnp.zeros(4, jnp.int32))  # RETURN from BUBBLESORT
    assert bool(timestep.extras["success"]) and int(state.step_count) == len(primitives) + 1
