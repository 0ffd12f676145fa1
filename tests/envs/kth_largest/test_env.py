"""KthLargest-v0 as a Jumanji environment: jit/vmap, specs, the generator's k, the local view,
postconditions of hand-played episodes, rendering and bad knobs."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jumanji.types import StepType

from npigym.envs.kth_largest import FullView, KthGenerator, KthLargest, KthPad, task
from npigym.envs.kth_largest import constants as c
from npigym.envs.machine.types import Frame
from npigym.envs.sorting import ArrayGenerator, RandomGenerator, Sorting
from npigym.envs.sorting import constants as sc
from tests.envs.kth_largest.conftest import key_for


def act(program, a0=0, a1=0):
    return jnp.array([program, a0, a1, 0], jnp.int32)


def test_env__reset_and_step_compile_once_and_vmap(small_env):
    chex.clear_trace_counter()
    reset = jax.jit(jax.vmap(chex.assert_max_traces(small_env.reset, n=1)))
    step = jax.jit(jax.vmap(chex.assert_max_traces(small_env.step, n=1)))
    states, timesteps = reset(jax.random.split(jax.random.PRNGKey(0), 5))
    assert isinstance(states.task, KthPad)
    chex.assert_shape(states.task.cells, (5, 6))
    chex.assert_shape(states.task.k, (5,))
    chex.assert_shape(timesteps.observation.local, (5, c.NUM_LOCAL_FEATURES))
    chex.assert_shape(timesteps.observation.action_mask, (5, c.NUM_KTH_PROGRAMS))
    assert bool(jnp.all(timesteps.step_type == StepType.FIRST))
    assert bool(jnp.all(states.stack.program[:, 0] == c.KTH))
    for program in (sc.BUBBLESORT, c.KJMP, sc.RETURN):
        states, timesteps = step(states, jnp.tile(act(program), (5, 1)))
    states, timesteps = reset(jax.random.split(jax.random.PRNGKey(1), 5))
    states, timesteps = step(states, jnp.zeros((5, 4), jnp.int32))
    assert bool(jnp.all(timesteps.step_type == StepType.LAST))  # RETURN from the root


def test_env__observations_and_actions_fit_their_specs(small_env, small_fns):
    reset, step, expert = small_fns
    states, timesteps = reset(jax.random.split(jax.random.PRNGKey(3), 64))
    spec = small_env.observation_spec
    local_sizes = np.asarray(spec.local.num_values)
    assert local_sizes.tolist() == [10, 10] + [2] * 6 + [3, 3]
    assert np.asarray(small_env.action_spec.num_values).tolist() == [12, 3, 2, 1]
    for _ in range(4):
        local = np.asarray(timesteps.observation.local)
        assert ((local >= 0) & (local < local_sizes)).all()
        states, timesteps = step(states, expert(states))
    one = jax.tree.map(lambda x: x[0], timesteps.observation)
    spec.validate(one)


def test_env__generator_draws_k_in_range_and_keeps_it_fixed():
    keys = jax.random.split(jax.random.PRNGKey(0), 2000)
    pads = jax.jit(jax.vmap(KthGenerator(RandomGenerator(1, 7))))(keys)
    k, n = np.asarray(pads.k), np.asarray(pads.length)
    assert ((k >= 1) & (k <= n)).all()
    for length in range(1, 8):  # every rank of every length occurs
        assert set(k[n == length].tolist()) == set(range(1, length + 1))
    fixed = jax.jit(jax.vmap(KthGenerator(RandomGenerator(3, 7), k=3)))(keys[:50])
    assert (np.asarray(fixed.k) == 3).all()
    # The array is the base generator's, untouched.
    base = jax.jit(jax.vmap(RandomGenerator(1, 7)))(keys[:50])
    np.testing.assert_array_equal(np.asarray(pads.cells[:50]), np.asarray(base.cells))
    env = KthLargest(min_length=4, max_length=8, k=4)
    assert env.k == 4 and int(jax.jit(env.reset)(jax.random.PRNGKey(5))[0].task.k) == 4


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(k=0), ValueError, r"k must be in \[1, 2\]"),
    (dict(k=-1), ValueError, "k must be in"),
    (dict(k=3), ValueError, "shortest array"),  # default min_length is 2
    (dict(min_length=5, max_length=8, k=6), ValueError, r"k must be in \[1, 5\]"),
    (dict(generator=ArrayGenerator([[1, 2, 3], [4]]), k=2), ValueError, r"\[1, 1\]"),
    (dict(k=True), TypeError, "k must be None"),
    (dict(k=1.5), TypeError, "k must be None"),
    (dict(k="1"), TypeError, "k must be None"),
    (dict(generator=KthGenerator(RandomGenerator()), k=1), ValueError, "not both"),
    (dict(generator=RandomGenerator(), max_length=4), ValueError, "not both"),
    (dict(generator="random"), TypeError, "SortingGenerator"),
    (dict(max_length=0), ValueError, "max_length"),
    (dict(modes="nested"), ValueError, "unknown modes preset"),
    (dict(modes={"KTH": "builtin"}), ValueError, "root program"),
    (dict(modes={"KJMP": "primitive"}), ValueError, "cannot be made"),
])
def test_env__bad_knobs_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        KthLargest(**kwargs)


def test_env__kth_generator_rejects_a_bad_base():
    with pytest.raises(TypeError, match="base must be a SortingGenerator"):
        KthGenerator(KthGenerator(RandomGenerator()))
    with pytest.raises(TypeError, match="base must be a SortingGenerator"):
        KthGenerator("random")


def test_env__local_view_tells_where_the_target_is(fixed_env, fixed_fns):
    reset, step, _ = fixed_fns
    state, timestep = reset(key_for(fixed_env, [8, 7, 6, 5, 4, 3, 2, 1], 5))  # target cell 3
    sides = lambda ts: np.asarray(ts.observation.local)[-2:].tolist()  # noqa: E731
    assert sides(timestep) == [c.LEFT_OF_TARGET] * 2
    state, timestep = step(state, act(sc.BUBBLESORT))
    state, timestep = step(state, act(c.KJMP))
    seen = []
    for _ in range(4):
        state, timestep = step(state, act(sc.RSHIFT))
        seen.append(sides(timestep))
    assert seen == [[0, 0], [0, 0], [1, 1], [2, 2]]
    assert np.asarray(timestep.observation.local)[:2].tolist() == [5, 5]  # values at cell 4
    state, timestep = step(state, act(sc.LSHIFT))
    assert sides(timestep) == [1, 1]
    state, timestep = step(state, act(sc.RETURN))
    assert bool(timestep.extras["postcondition"])  # KJMP
    state, timestep = step(state, act(sc.RETURN))
    assert bool(timestep.extras["success"]) and bool(timestep.last())
    full = timestep.observation.full
    assert isinstance(full, FullView) and int(full.k) == 5
    assert np.asarray(full.pointers).tolist() == [3, 3, 7]


@pytest.mark.parametrize("array, k, actions, expected", [
    # KTH returns after sorting, before KJMP: the pointers are on cell 0, not on cell 2.
    ([9, 2, 7, 1], 2, [sc.BUBBLESORT, sc.RETURN], [("BUBBLESORT", True), ("KTH", False)]),
    # KJMP without sorting: on the target cell, which does not hold the largest value.
    ([9, 2, 7, 1], 1, [c.KJMP] + [sc.RSHIFT] * 3 + [sc.RETURN, sc.RETURN],
     [("RSHIFT", True)] * 3 + [("KJMP", True), ("KTH", False)]),
    # ... whereas a cell that holds the k-th largest already needs no sort (as with MAX).
    ([9, 2, 7, 1], 2, [c.KJMP] + [sc.RSHIFT] * 2 + [sc.RETURN, sc.RETURN],
     [("RSHIFT", True)] * 2 + [("KJMP", True), ("KTH", True)]),
    # KJMP returning early, one cell short.
    ([9, 2, 7, 1], 1, [sc.BUBBLESORT, c.KJMP, sc.RSHIFT, sc.RSHIFT, sc.RETURN],
     [("BUBBLESORT", True)] + [("RSHIFT", True)] * 2 + [("KJMP", False)]),
    # KJMP overshooting and coming back.
    ([0, 5, 5, 1, 5], 4, [sc.BUBBLESORT, c.KJMP, sc.RSHIFT, sc.RSHIFT, sc.LSHIFT, sc.RETURN,
                          sc.RETURN],
     [("BUBBLESORT", True)] + [("RSHIFT", True)] * 2 + [("LSHIFT", True), ("KJMP", True),
                                                        ("KTH", True)]),
    # Ties: the 2nd and 3rd largest of [0, 5, 5, 1, 5] are 5, so k = 3 ends on a 5 at cell 2.
    ([0, 5, 5, 1, 5], 3, [sc.BUBBLESORT, c.KJMP, sc.RSHIFT, sc.RSHIFT, sc.RETURN, sc.RETURN],
     [("BUBBLESORT", True)] + [("RSHIFT", True)] * 2 + [("KJMP", True), ("KTH", True)]),
    # One value: the target is cell 0, where the pointers start.
    ([4], 1, [c.KJMP, sc.RETURN, sc.RETURN], [("KJMP", True), ("KTH", True)]),
])
def test_env__postconditions(fixed_env, fixed_fns, array, k, actions, expected):
    reset, step, _ = fixed_fns
    state, _ = reset(key_for(fixed_env, array, k))
    got = []
    for a in actions:
        state, timestep = step(state, act(a))
        assert not bool(timestep.extras["invalid_action"])
        if int(timestep.extras["returned_program"]) >= 0:
            got.append((fixed_env.library.names[int(timestep.extras["returned_program"])],
                        bool(timestep.extras["postcondition"])))
    assert got == expected
    assert bool(timestep.last()) == (expected[-1][0] == "KTH")
    assert bool(timestep.extras["success"]) == (expected[-1] == ("KTH", True))


def test_env__holds_kth_largest_counts_duplicates():
    pad = KthGenerator(ArrayGenerator([[0, 5, 5, 1, 5]]), k=1)(jax.random.PRNGKey(0))
    holds = jax.jit(jax.vmap(lambda k, i: task.holds_kth_largest(pad.replace(k=k), i),
                             in_axes=(None, 0)))
    for k, holding in [(1, {1, 2, 4}), (2, {1, 2, 4}), (3, {1, 2, 4}), (4, {3}), (5, {0})]:
        got = set(np.flatnonzero(np.asarray(holds(jnp.int32(k), jnp.arange(5)))).tolist())
        assert got == holding


def test_env__kjmp_expert_brings_apart_pointers_together(fixed_env):
    """A learned BUBBLESORT may leave pointers 1 and 2 apart: the expert's KJMP LSHIFTs first."""
    pad = fixed_env.generator(key_for(fixed_env, [8, 7, 6, 5, 4, 3, 2, 1], 6))  # target 2
    pad = pad.replace(pointers=jnp.array([3, 5, 0], jnp.int32))
    expert = jax.jit(lambda p: task.expert_call(p, kjmp_frame(fixed_env.snapshot(p))))
    calls = []
    for _ in range(20):
        call = expert(pad)
        calls.append(int(call[0]))
        if call[0] == sc.RETURN:
            break
        step = -1 if call[0] == sc.LSHIFT else 1
        p = np.asarray(pad.pointers)
        pad = pad.replace(pointers=jnp.asarray(
            [min(max(p[0] + step, 0), 7), min(max(p[1] + step, 0), 7), p[2]], jnp.int32))
    assert calls == [sc.LSHIFT] * 5 + [sc.RSHIFT] * 2 + [sc.RETURN]
    assert np.asarray(pad.pointers).tolist() == [2, 2, 0]


def kjmp_frame(snapshot):
    return Frame(jnp.asarray(c.KJMP, jnp.int32), jnp.zeros((3,), jnp.int32),
                 jnp.zeros((), jnp.int32), snapshot)


def test_env__renders_k_and_the_target(fixed_env, fixed_fns):
    reset, step, _ = fixed_fns
    state, _ = reset(key_for(fixed_env, [0, 5, 5, 1, 5], 4))
    state, _ = step(state, act(c.KJMP))
    text = fixed_env.render(state)
    assert "k = 4: target cell 1 (length - k), the 4th largest value is 1" in text
    assert "KTH  [1 calls]" in text and "KJMP  [0 calls]  <- acting" in text
    image = fixed_env.render(state, "rgb_array")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert "KthGenerator(ArrayGenerator(" in repr(fixed_env)


def test_env__library_extends_sorting_and_is_a_task_family_of_its_own(small_env):
    from npigym.agents.npi.model import ProgramTable, task_layout, task_name

    sorting = Sorting(max_length=6)
    assert small_env.library.names[: sc.NUM_SORTING_PROGRAMS] == sorting.library.names
    assert small_env.library.names[sc.NUM_SORTING_PROGRAMS:] == ("KJMP", "KTH")
    # Its own encoder (the local view has 10 features, Sorting's 8), Sorting's rows by name.
    assert task_name(small_env) == "kthlargest"
    base = ProgramTable.build([task_layout(sorting)])
    table = ProgramTable.build([task_layout(small_env)], base=base)
    assert table.names == (*base.names, "KJMP", "KTH")
    assert [t.name for t in table.tasks] == ["sorting", "kthlargest"]
