"""KthLargest-v0's expert solves every instance, small and large, in every posing that has one."""

import jax
import numpy as np
import pytest

from npigym.envs.kth_largest import KthLargest, task
from npigym.envs.kth_largest import constants as c
from npigym.envs.sorting import task as sorting_task
from tests.envs.kth_largest.conftest import jitted, kth_largest, run_expert


def inversions(values):
    a = np.asarray(values)
    return int(np.triu(a[:, None] > a[None, :], 1).sum())


def check_solved(out):
    """Every episode succeeded with every postcondition holding, the array sorted and pointers 1
    and 2 on cell ``length - k``, which holds the k-th largest value."""
    assert out["success"].all() and out["posts_hold"].all()
    first, last = out["first"], out["last"]
    for b in range(len(out["success"])):
        n, k = int(first.length[b]), int(first.k[b])
        initial = (first.cells[b, :n].astype(int) - 1).tolist()
        final = (last.cells[b, :n].astype(int) - 1).tolist()
        assert 1 <= k <= n and int(last.k[b]) == k
        assert final == sorted(initial)
        assert last.pointers[b, :2].tolist() == [n - k, n - k]
        assert final[n - k] == kth_largest(initial, k)


def test_expert__solves_every_small_instance_in_the_default_posing(small_env, small_fns):
    assert small_env.library["BUBBLESORT"].mode == "builtin"
    assert small_env.library["KJMP"].mode == "agent"
    assert small_env.library.root == c.KTH
    out = run_expert(small_env, small_fns, jax.random.split(jax.random.PRNGKey(0), 256))
    check_solved(out)
    lengths, ks = out["first"].length, out["first"].k
    assert set(lengths.tolist()) == {2, 3, 4, 5, 6} and set(ks.tolist()) == {1, 2, 3, 4, 5, 6}
    # KTH: BUBBLESORT (builtin), KJMP; KJMP: length - k builtin RSHIFTs, RETURN; KTH's RETURN.
    np.testing.assert_array_equal(out["steps"], lengths - ks + 4)


def test_expert__hierarchical_steps_in_closed_form_and_every_postcondition_holds():
    env = KthLargest(min_length=2, max_length=6, modes="hierarchical")
    assert all(env.library[n].mode == "agent" for n in ("BUBBLESORT", "RSHIFT", "KJMP"))
    out = run_expert(env, jitted(env), jax.random.split(jax.random.PRNGKey(1), 48))
    check_solved(out)
    first = out["first"]
    limits = jax.jit(jax.vmap(env.default_step_limit))(jax.tree.map(np.asarray, first))
    for b in range(48):
        n, k = int(first.length[b]), int(first.k[b])
        initial = (first.cells[b, :n].astype(int) - 1).tolist()
        expected = sorting_task.expert_steps(n, inversions(initial)) + task.kjmp_steps(n, k)
        assert out["steps"][b] == int(expected)
        m = n - 1
        worst = 12 * m * m + 5 * m + 1 + m * (m + 1) // 2 + 4 * (n - k) + 4
        assert int(limits[b]) == 2 * worst


def test_expert__solves_large_instances_in_the_macro_posing():
    env = KthLargest(min_length=50, max_length=100, modes="macro")
    assert env.library["BUBBLESORT"].mode == "builtin" and env.library["KJMP"].mode == "builtin"
    out = run_expert(env, jitted(env), jax.random.split(jax.random.PRNGKey(2), 8))
    check_solved(out)
    assert (out["first"].length >= 50).all() and (out["steps"] == 3).all()


def test_expert__flat_posing_has_no_expert_and_calls_primitives_only():
    env = KthLargest(max_length=5, modes="flat")
    _, timestep = jax.jit(env.reset)(jax.random.PRNGKey(0))
    mask = np.asarray(timestep.observation.action_mask)
    assert mask.tolist() == [True, True, True] + [False] * 9  # RETURN, MOVE_PTR, SWAP
    assert not env.has_expert
    with pytest.raises(ValueError, match="inlines"):
        env.expert_action(None)
