"""The sorting task's functions: primitives, inversion bookkeeping, postconditions."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from npigym.envs.machine.types import Frame
from npigym.envs.sorting import constants as c
from npigym.envs.sorting import task as sorting_task
from npigym.envs.sorting.generator import make_pad
from tests.envs.sorting.expert_runner import key_for


def act(program, ptr=0, direction=0):
    return jnp.array([program, ptr, direction, 0], jnp.int32)


RETURN, BUBBLE, BSTEP, COMPSWAP, RSHIFT, LSHIFT, RESET, SWAP = (
    act(c.RETURN), act(c.BUBBLE), act(c.BSTEP), act(c.COMPSWAP), act(c.RSHIFT), act(c.LSHIFT),
    act(c.RESET), act(c.SWAP))
P1_RIGHT, P2_RIGHT, P3_RIGHT = (act(c.MOVE_PTR, p, c.RIGHT) for p in (c.P1, c.P2, c.P3))
P1_LEFT, P2_LEFT = act(c.MOVE_PTR, c.P1, c.LEFT), act(c.MOVE_PTR, c.P2, c.LEFT)


@pytest.fixture(scope="module")
def env(fixed_env):
    return fixed_env


@pytest.fixture(scope="module")
def step(fixed_jitted):
    return fixed_jitted[1]


@pytest.fixture(scope="module")
def start(fixed_env, fixed_jitted):
    """The state at the start of [2, 0, 1, 3]."""
    return fixed_jitted[0](key_for(fixed_env, [2, 0, 1, 3]))[0]


def play(start, step, actions):
    """Steps through ``actions`` from the start; returns the final state and every timestep."""
    state = start
    timesteps = []
    for a in actions:
        state, timestep = step(state, a)
        timesteps.append(timestep)
    return state, timesteps


def returns(env, timesteps):
    """(program name, postcondition) of every RETURN, in order."""
    return [(env.library.names[int(t.extras["returned_program"])],
             bool(t.extras["postcondition"]))
            for t in timesteps if int(t.extras["returned_program"]) >= 0]


def test_task__moves_stay_on_the_array_and_swap_exchanges_the_bubble_pointers(env, start, step):
    state, ts = play(start, step, [P1_LEFT, P3_RIGHT, BUBBLE, P2_RIGHT, BSTEP, COMPSWAP, SWAP])
    assert [bool(t.extras["invalid_action"]) for t in ts] == [True] + [False] * 6
    assert float(ts[0].reward) == -0.5 and float(ts[1].reward) == 0.0
    np.testing.assert_array_equal(np.asarray(state.task.cells), [1, 3, 2, 4])  # 0 2 1 3
    np.testing.assert_array_equal(np.asarray(state.task.pointers), [0, 1, 1])
    # The local view: values under pointers 1 and 2, then (start, end) of pointers 1, 2, 3.
    np.testing.assert_array_equal(np.asarray(ts[-1].observation.local), [0, 2, 1, 0, 0, 0, 0, 0])


def test_task__swap_on_one_cell_is_an_invalid_no_op(env, start, step):
    state, ts = play(start, step, [BUBBLE, BSTEP, COMPSWAP, SWAP])  # pointers 1 and 2 both on 0
    assert bool(ts[-1].extras["invalid_action"])
    np.testing.assert_array_equal(np.asarray(state.task.cells), [3, 1, 2, 4])


def test_task__pointer_3_counts_only_passes_made(env, start, step):
    # [2, 0, 1, 3]: only the last cell is settled, so pointer 3 may move right once.
    state, ts = play(start, step, [P3_RIGHT] * 3)
    assert [bool(t.extras["invalid_action"]) for t in ts] == [False, True, True]
    assert int(state.task.pointers[c.P3]) == 1
    # After one pass ([0, 1, 2, 3], sorted) every cell is settled: it may go to the end, and
    # no further (a move off the array).
    state, ts = play(start, step, [*bubble_pass([True, True, False]), *[P3_RIGHT] * 4])
    assert [bool(t.extras["invalid_action"]) for t in ts[-4:]] == [False] * 3 + [True]
    assert int(state.task.pointers[c.P3]) == 3
    # Moving it left is always allowed.
    state, ts = play(start, step, [P3_RIGHT, act(c.MOVE_PTR, c.P3, c.LEFT)])
    assert not any(bool(t.extras["invalid_action"]) for t in ts)


@pytest.mark.parametrize("actions, expected", [
    ([RETURN], [("BUBBLESORT", False)]),
    ([RESET, RETURN], [("RESET", True)]),  # already at the start
    ([BUBBLE, P2_RIGHT, RETURN], [("BUBBLE", False)]),
    ([BUBBLE, P2_RIGHT, BSTEP, COMPSWAP, RETURN], [("COMPSWAP", False)]),  # 2 > 0 unswapped
    ([BUBBLE, P2_RIGHT, BSTEP, COMPSWAP, SWAP, RETURN], [("COMPSWAP", True)]),
    ([BUBBLE, P2_RIGHT, BSTEP, RSHIFT, P1_RIGHT, RETURN], [("RSHIFT", False)]),
    ([BUBBLE, P2_RIGHT, BSTEP, RSHIFT, P1_RIGHT, P2_RIGHT, RETURN], [("RSHIFT", True)]),
    ([BUBBLE, P2_RIGHT, BSTEP, COMPSWAP, SWAP, RETURN, RETURN],  # no RSHIFT
     [("COMPSWAP", True), ("BSTEP", False)]),
    ([BUBBLE, P2_RIGHT, BSTEP, RSHIFT, P1_RIGHT, P2_RIGHT, RETURN, RETURN],  # no COMPSWAP
     [("RSHIFT", True), ("BSTEP", False)]),
    ([P1_RIGHT, P2_RIGHT, P2_RIGHT, RESET, LSHIFT, P1_LEFT, P2_LEFT, RETURN, RETURN],
     [("LSHIFT", True), ("RESET", False)]),  # pointer 2 not back yet
    ([P2_RIGHT, P2_RIGHT, RESET, LSHIFT, P2_LEFT, P2_LEFT, RETURN],  # pointer 2 went 2 cells
     [("LSHIFT", False)]),
])
def test_task__postconditions_catch_wrong_executions(env, start, step, actions, expected):
    _, ts = play(start, step, actions)
    assert not any(bool(t.extras["invalid_action"]) for t in ts)
    assert returns(env, ts) == expected


def bubble_pass(swap):
    """A whole BUBBLE pass over [2, 0, 1, 3]; ``swap`` says which COMPSWAPs swap."""
    actions = [BUBBLE, P2_RIGHT]
    for k, s in enumerate(swap):
        actions += [BSTEP, COMPSWAP] + ([SWAP] if s else []) + [RETURN, RSHIFT, P1_RIGHT]
        actions += ([P2_RIGHT] if k < 2 else []) + [RETURN, RETURN]
    return [*actions, RETURN]


def test_task__bubble_must_settle_one_more_cell_than_pointer_3_counts(env, start, step):
    _, ts = play(start, step, bubble_pass([True, True, False]))  # [0, 1, 2, 3]
    assert returns(env, ts)[-1] == ("BUBBLE", True)
    # Pointer 3 says one pass is done, so this pass must settle two cells: a pass that
    # swaps nothing leaves [2, 0, 1, 3], whose last two cells are not the two largest.
    _, ts = play(start, step, [P3_RIGHT, *bubble_pass([False, False, False])])
    assert returns(env, ts)[-1] == ("BUBBLE", False)
    _, ts = play(start, step, bubble_pass([False, False, False]))  # first pass: 3 is in place
    assert returns(env, ts)[-1] == ("BUBBLE", True)


def test_task__sort_postcondition_checks_the_permutation(start):
    @jax.jit
    def sort_post(pad, cells):
        pad = pad.replace(cells=cells, pointers=pad.pointers.at[c.P3].set(pad.length - 1))
        frame = Frame(jnp.int32(c.BUBBLESORT), jnp.zeros(3, jnp.int32), jnp.int32(0),
                      sorting_task.snapshot(pad))
        return sorting_task.postcondition(pad, frame), sorting_task.settled_suffix(
            pad, pad.length)

    def check(cells):
        post, is_sorted = sort_post(start.task, jnp.array(cells, start.task.cells.dtype))
        return bool(post), bool(is_sorted)

    assert check([3, 1, 2, 4]) == (False, False)  # [2, 0, 1, 3] as generated
    assert check([1, 2, 3, 4]) == (True, True)
    assert check([1, 2, 3, 3]) == (False, True)  # sorted, but not a permutation


def test_task__swap_inversion_change_matches_brute_force():
    rng = np.random.default_rng(0)
    arrays = rng.integers(0, 4, size=(40, 9))
    pairs = np.array(list(itertools.product(range(9), range(9))))

    def brute(a):
        return int(np.triu(a[:, None] > a[None, :], 1).sum())

    change = jax.jit(jax.vmap(jax.vmap(sorting_task.swap_inversion_change, (None, 0, 0)),
                              (0, None, None)))
    got = np.asarray(change(jnp.asarray(arrays + 1, jnp.int8), pairs[:, 0], pairs[:, 1]))
    for b, a in enumerate(arrays):
        for k, (i, j) in enumerate(pairs):
            swapped = a.copy()
            swapped[[i, j]] = swapped[[j, i]]
            assert got[b, k] == brute(swapped) - brute(a), (a, i, j)


def test_task__settled_suffix():
    pad = make_pad(jnp.array([3, 1, 2, 4, 5, 0]), 5, jnp.int8)  # [3 1 2 4 5], one blank
    settled = jax.jit(sorting_task.settled_suffix)
    assert [bool(settled(pad, k)) for k in range(7)] == [True, True, True, False, False, False,
                                                         False]


def test_task__sort_returns_only_with_pointer_3_at_the_end(env, start, step):
    # One pass sorts [2, 0, 1, 3], but RETURN there looks like RETURN after any other pass.
    reset = [RESET, *[LSHIFT, P1_LEFT, P2_LEFT, RETURN] * 3, RETURN]
    sort_pass = [*bubble_pass([True, True, False]), *reset]
    _, ts = play(start, step, [*sort_pass, RETURN])
    assert returns(env, ts)[-2:] == [("RESET", True), ("BUBBLESORT", False)]
    _, ts = play(start, step, [*sort_pass, P3_RIGHT, P3_RIGHT, P3_RIGHT, RETURN])
    assert returns(env, ts)[-1] == ("BUBBLESORT", True) and bool(ts[-1].extras["success"])
