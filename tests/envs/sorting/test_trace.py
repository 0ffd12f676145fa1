"""Sorting-v0's expert reproduces NPI's bubble sort trace (Cai et al. 2017, Fig. 2)."""

import numpy as np
import pytest

from npigym.envs.sorting import task as sorting_task
from tests.envs.sorting.expert_runner import key_for

# The whole trace for [3, 1, 2, 0], one line per agent step, indented by the depth of the frame
# that makes the call. Three passes (length - 1): BUBBLE, RESET, then BUBBLESORT's own
# PTR 3 RIGHT. Pass 1 swaps at every BSTEP ([3,1,2,0] -> [1,2,0,3]), pass 2 at the second
# ([1,2,0,3] -> [1,0,2,3]), pass 3 at the first ([1,0,2,3] -> [0,1,2,3]). The last BSTEP of a
# pass moves pointer 1 only: pointer 2 is already on the last cell.
TRACE_3120 = """
BUBBLE
  MOVE_PTR(P2, RIGHT)
  BSTEP
    COMPSWAP
      SWAP
      RETURN
    RSHIFT
      MOVE_PTR(P1, RIGHT)
      MOVE_PTR(P2, RIGHT)
      RETURN
    RETURN
  BSTEP
    COMPSWAP
      SWAP
      RETURN
    RSHIFT
      MOVE_PTR(P1, RIGHT)
      MOVE_PTR(P2, RIGHT)
      RETURN
    RETURN
  BSTEP
    COMPSWAP
      SWAP
      RETURN
    RSHIFT
      MOVE_PTR(P1, RIGHT)
      RETURN
    RETURN
  RETURN
RESET
  LSHIFT
    MOVE_PTR(P1, LEFT)
    MOVE_PTR(P2, LEFT)
    RETURN
  LSHIFT
    MOVE_PTR(P1, LEFT)
    MOVE_PTR(P2, LEFT)
    RETURN
  LSHIFT
    MOVE_PTR(P1, LEFT)
    MOVE_PTR(P2, LEFT)
    RETURN
  RETURN
MOVE_PTR(P3, RIGHT)
BUBBLE
  MOVE_PTR(P2, RIGHT)
  BSTEP
    COMPSWAP
      RETURN
    RSHIFT
      MOVE_PTR(P1, RIGHT)
      MOVE_PTR(P2, RIGHT)
      RETURN
    RETURN
  BSTEP
    COMPSWAP
      SWAP
      RETURN
    RSHIFT
      MOVE_PTR(P1, RIGHT)
      MOVE_PTR(P2, RIGHT)
      RETURN
    RETURN
  BSTEP
    COMPSWAP
      RETURN
    RSHIFT
      MOVE_PTR(P1, RIGHT)
      RETURN
    RETURN
  RETURN
RESET
  LSHIFT
    MOVE_PTR(P1, LEFT)
    MOVE_PTR(P2, LEFT)
    RETURN
  LSHIFT
    MOVE_PTR(P1, LEFT)
    MOVE_PTR(P2, LEFT)
    RETURN
  LSHIFT
    MOVE_PTR(P1, LEFT)
    MOVE_PTR(P2, LEFT)
    RETURN
  RETURN
MOVE_PTR(P3, RIGHT)
BUBBLE
  MOVE_PTR(P2, RIGHT)
  BSTEP
    COMPSWAP
      SWAP
      RETURN
    RSHIFT
      MOVE_PTR(P1, RIGHT)
      MOVE_PTR(P2, RIGHT)
      RETURN
    RETURN
  BSTEP
    COMPSWAP
      RETURN
    RSHIFT
      MOVE_PTR(P1, RIGHT)
      MOVE_PTR(P2, RIGHT)
      RETURN
    RETURN
  BSTEP
    COMPSWAP
      RETURN
    RSHIFT
      MOVE_PTR(P1, RIGHT)
      RETURN
    RETURN
  RETURN
RESET
  LSHIFT
    MOVE_PTR(P1, LEFT)
    MOVE_PTR(P2, LEFT)
    RETURN
  LSHIFT
    MOVE_PTR(P1, LEFT)
    MOVE_PTR(P2, LEFT)
    RETURN
  LSHIFT
    MOVE_PTR(P1, LEFT)
    MOVE_PTR(P2, LEFT)
    RETURN
  RETURN
MOVE_PTR(P3, RIGHT)
RETURN
"""


def parse(trace):
    return [((len(line) - len(line.lstrip())) // 2, line.strip())
            for line in trace.strip("\n").splitlines()]


SHORT_ARRAYS = [[0], [1, 0], [0, 0], [2, 2, 1]]  # in conftest.FIXED_ARRAYS


def run_expert(env, jitted, array):
    reset, step, expert = jitted
    state, timestep = reset(key_for(env, array))
    calls = []
    while not timestep.last():
        action = expert(state)
        calls.append((int(state.stack.depth), env.library.format_call(action[0], action[1:])))
        state, timestep = step(state, action)
        assert not bool(timestep.extras["invalid_action"]), calls[-1]
    return calls, state, timestep


def test_trace__expert_reproduces_the_bubble_sort_trace_for_3120(fixed_env, fixed_jitted):
    calls, state, timestep = run_expert(fixed_env, fixed_jitted, [3, 1, 2, 0])
    expected = parse(TRACE_3120)
    assert len(expected) == 129  # 12 m^2 + 5 m + 1 + inversions, m = 3, 5 inversions
    assert calls == expected
    assert bool(timestep.extras["success"]) and float(timestep.reward) == 1.0
    np.testing.assert_array_equal(np.asarray(state.task.cells), [1, 2, 3, 4])  # 0 1 2 3
    np.testing.assert_array_equal(np.asarray(state.task.pointers), [0, 0, 3])
    assert int(state.step_count) == int(sorting_task.expert_steps(4, 5))


@pytest.mark.parametrize("array", SHORT_ARRAYS)
def test_trace__short_arrays_and_ties(fixed_env, fixed_jitted, array):
    """Length 1 returns at once; ties are never swapped (bubble sort is stable)."""
    calls, state, timestep = run_expert(fixed_env, fixed_jitted, array)
    assert bool(timestep.extras["success"])
    n = len(array)
    inversions = sum(a > b for i, a in enumerate(array) for b in array[i + 1:])
    assert len(calls) == int(sorting_task.expert_steps(n, inversions))
    assert sum(call == "SWAP" for _, call in calls) == inversions
    np.testing.assert_array_equal(np.asarray(state.task.cells)[:n] - 1, sorted(array))
    if n == 1:
        assert calls == [(0, "RETURN")]
