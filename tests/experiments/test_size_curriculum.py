"""The size curriculum (``size_curriculum=true``): its schedule, its wrapper, training, resume."""

import io
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npigym
from npigym.agents.size_curriculum import (
    SizeCurriculumWrapper,
    replay_schedule,
    size_ladder,
)
from npigym.experiments import run_dir as rd
from npigym.experiments import train as train_mod
from npigym.experiments.config import ConfigError, load_config
from npigym.experiments.factory import make_env
from npigym.experiments.logger import read_metrics
from npigym.wrappers.auto_reset import VmapAutoResetWrapper, reset_after


# ---------------------------------------------------------------------------------------------
# The schedule: a pure function of the success history.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, ladder", [
    ((1, 20), (1, 2, 4, 8, 16, 20)),
    ((2, 10, 1.0, 3), (2, 5, 8, 10)),
    ((3, 10, 1.5), (3, 5, 8, 10)),
    ((2, 4, 1.0, 0), (2, 3, 4)),  # at least +1 per rung
    ((5, 5), (5,)),
])
def test_size_ladder__grows_by_factor_or_step_up_to_the_largest(args, ladder):
    assert size_ladder(*args) == ladder


@pytest.mark.parametrize("args", [(0, 5), (6, 5), (1, 5, 0.5), (1, 5, 2.0, -1)])
def test_size_ladder__rejects_bad_values(args):
    with pytest.raises(ValueError):
        size_ladder(*args)


def test_schedule__climbs_a_rung_once_the_moving_success_reaches_the_threshold():
    ladder = (1, 2, 4, 8)
    # With decay 0.5 a perfect rate reaches 1 - 0.5**n: 0.9 is passed at the 4th update, and
    # the average restarts at 0 on each rung.
    sizes = replay_schedule([(10, 10)] * 14, ladder, threshold=0.9, decay=0.5)
    assert sizes == [1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8]
    n = math.ceil(math.log(1 - 0.9) / math.log(0.95))  # the docstring's 45 updates
    assert replay_schedule([(5, 5)] * n, ladder, 0.9, 0.95)[-2:] == [1, 2]


def test_schedule__failures_and_updates_without_episodes_do_not_climb():
    ladder = (2, 4)
    history = [(10, 5)] * 20 + [(0, 0)] * 5  # 50 %: never 0.9; no episodes: no change
    assert set(replay_schedule(history, ladder, 0.9, 0.5)) == {2}
    # Updates without episodes keep the average: 3 good updates, a gap, 1 more climbs.
    history = [(4, 4)] * 3 + [(0, 0)] * 3 + [(4, 4)]
    assert replay_schedule(history, ladder, 0.9, 0.5) == [2] * 6 + [4]


def test_schedule__threshold_one_and_decay_zero_climb_at_each_perfect_update():
    history = [(3, 3), (3, 2), (3, 3), (3, 3), (3, 3)]
    assert replay_schedule(history, (1, 2, 3, 4), 1.0, 0.0) == [2, 2, 3, 4, 4]


# ---------------------------------------------------------------------------------------------
# The wrapper: capped instances, traced size (no recompilation), program curriculum inside.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id, kwargs, knob", [
    ("Addition-v0", {"min_digits": 2, "max_digits": 6}, "digits"),
    ("Sorting-v0", {"min_length": 2, "max_length": 6}, "length"),
])
def test_generator__sample_at_size_is_the_plain_draw_at_the_largest_and_caps_below(
        env_id, kwargs, knob):
    generator = npigym.make(env_id, **kwargs).generator
    keys = jax.random.split(jax.random.PRNGKey(3), 256)
    plain = jax.vmap(generator)(keys)
    at_max = jax.vmap(lambda k: generator.sample_at_size(k, jnp.int32(6)))(keys)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(at_max)):
        np.testing.assert_array_equal(a, b)
    sizes = {3: None, 1: None}  # 1 is clipped to the smallest size, 2
    for cap in sizes:
        task = jax.vmap(lambda k, c=cap: generator.sample_at_size(k, jnp.int32(c)))(keys)
        n = np.asarray(task.num_digits if knob == "digits" else task.length)
        assert n.min() == 2 and n.max() == max(cap, 2)


def _task(state):
    inner = state.inner
    while not hasattr(inner, "task"):
        inner = inner.inner
    return inner.task


def _size_of(task):
    return np.asarray(task.num_digits if hasattr(task, "num_digits") else task.length)


@pytest.mark.parametrize("preset, kwargs", [
    ("addition-macro", ["max_digits=8"]),
    ("addition-hierarchical", ["max_digits=8"]),
    ("sorting-macro", ["max_length=8"]),
    ("sorting-hierarchical", ["max_length=8"]),
])
def test_wrapper__grows_the_size_in_traced_state_without_recompiling(preset, kwargs):
    config = load_config(preset, ["size_curriculum=true", "size_curriculum_threshold=1.0",
                                  "size_curriculum_decay=0.0", *kwargs])
    env = make_env(config)
    assert isinstance(env, SizeCurriculumWrapper)
    smallest = env.unwrapped.generator.size_range[0]
    assert env.ladder[0] == smallest and env.ladder[-1] == 8
    batch = VmapAutoResetWrapper(env)
    state, _ = jax.jit(batch.reset)(jax.random.split(jax.random.PRNGKey(0), 64))
    root = env.library.root
    perfect = jnp.zeros(env.library.num_programs).at[root].set(4.0)
    # Climb by reports of perfect whole-task episodes; draw the next episodes at each size.
    update = jax.jit(env.update_curriculum)
    fresh = jax.jit(jax.vmap(lambda s: reset_after(env, s)))
    hierarchical = "hierarchical" in preset  # a program curriculum inside: both report
    assert ("program_open" in env.curriculum_metrics(state)) == hierarchical
    seen = []
    for rung, size in enumerate(env.ladder):
        assert int(env.curriculum_metrics(state)["curriculum_size"]) == size
        assert (np.asarray(state.level) == rung).all()
        drawn = _size_of(_task(fresh(state)[0]))
        assert drawn.max() <= size and drawn.min() >= smallest
        seen.append(drawn.max())
        state = update(state, perfect, perfect)
    assert seen[-1] > seen[0]
    assert int(env.curriculum_metrics(state)["curriculum_size"]) == 8  # stays at the top
    assert fresh._cache_size() == 1 and update._cache_size() == 1  # one compilation


@pytest.mark.parametrize("words, message", [
    (["size_curriculum_start=3"], "size_curriculum_start needs size_curriculum=true"),
    (["size_curriculum=true", "size_curriculum_start=0"], "size_curriculum_start must be >= 1"),
    (["size_curriculum=true", "size_curriculum_factor=0.5"], "size_curriculum_factor must be"),
    (["size_curriculum=true", "size_curriculum_step=-1"], "size_curriculum_step must be"),
    (["size_curriculum=true", "size_curriculum_threshold=0"], "size_curriculum_threshold must"),
    (["size_curriculum=true", "size_curriculum_threshold=1.5"], "size_curriculum_threshold"),
    (["size_curriculum=true", "size_curriculum_decay=1"], "size_curriculum_decay must be"),
    (["size_curriculum=3"], "size_curriculum must be bool"),
    (["size_curriculum=true", "meta.estimator=biased"], "size_curriculum needs meta"),
])
def test_config__bad_size_curriculum_values_name_the_key(words, message):
    with pytest.raises(ConfigError, match=message):
        load_config("addition-macro", words)


@pytest.mark.parametrize("preset, words, message", [
    ("addition-macro", ["size_curriculum_start=9"], r"start must be in \[1, 5\]"),
    ("sorting-macro", ["size_curriculum_start=1"], r"start must be in \[2, 5\]"),
    ("addition-hierarchical", ["curriculum={ADD: 0}"], "start some at the root"),
    ("snake", [], "cannot cap"),
])
def test_make_env__size_curriculum_that_cannot_apply_is_a_config_error(preset, words, message):
    config = load_config(preset, ["size_curriculum=true", *words])
    with pytest.raises(ConfigError, match=f"size_curriculum: .*{message}"):
        make_env(config)


# ---------------------------------------------------------------------------------------------
# Training: the size grows, is logged per seed, and a resume continues bit for bit.
# ---------------------------------------------------------------------------------------------
# Sorting from 1-element arrays (sorted: a RETURN solves them), so that an untrained policy
# passes the low threshold and the ladder 1, 2, 4 is climbed within a few calls.
TINY = ["num_envs=8", "rollout_length=8", "updates_per_call=4", "encoder_layers=[8]",
        "head_layers=[8]", "min_length=1", "max_length=4", "num_seeds=2",
        "checkpoint_every=2", "eval_lengths=[4]", "eval_episodes=2", "size_curriculum=true",
        "size_curriculum_threshold=0.3", "size_curriculum_decay=0.0"]
PER_CALL = 8 * 8 * 4
CALLS = 6


def tiny_config(calls=CALLS):
    return load_config("sorting-macro", [*TINY, f"total_env_steps={calls * PER_CALL}"])


def final_state(run):
    _, _, _, init, _ = train_mod.build(tiny_config())
    checkpointer = rd.Checkpointer(run)
    try:
        return checkpointer.restore(rd.abstract(jax.eval_shape(init)))
    finally:
        checkpointer.close()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("size") / "straight")
    train_mod.train(tiny_config(), run_dir=path, progress=False, final_eval=False,
                    out=io.StringIO())
    return path


def test_train__the_size_grows_and_is_logged_per_seed(straight):
    records = read_metrics(straight)
    assert [r["call"] for r in records] == list(range(1, CALLS + 1))
    per_seed = np.array([r["curriculum_size_per_seed"] for r in records])
    assert per_seed.shape == (CALLS, 2) and set(per_seed.ravel()) <= {1, 2, 4}
    assert (np.diff(per_seed, axis=0) >= 0).all()  # never shrinks
    assert per_seed[-1].min() > 1  # every seed grew
    assert records[-1]["curriculum_size"] == per_seed[-1].mean()
    with open(os.path.join(straight, rd.METRICS_CSV)) as f:
        assert "curriculum_size" in f.readline().split(",")
    state, _ = final_state(straight)
    env_state = state.actor.env_state
    np.testing.assert_array_equal(  # checkpointed: the last call's sizes, in every env
        np.asarray(env_state.level).max(axis=1), np.asarray(env_state.level).min(axis=1))


def test_train__resume_continues_the_schedule_bit_for_bit(straight, tmp_path):
    path = str(tmp_path / "resumed")
    train_mod.train(tiny_config(calls=3), run_dir=path, progress=False, final_eval=False,
                    out=io.StringIO())
    train_mod.train(tiny_config(), run_dir=path, resume=True, progress=False,
                    final_eval=False, out=io.StringIO())
    a, b = final_state(straight), final_state(path)
    for x, y in zip(jax.tree.leaves(a[0]), jax.tree.leaves(b[0])):
        x, y = (jax.random.key_data(v) if jnp.issubdtype(v.dtype, jax.dtypes.prng_key) else v
                for v in (x, y))
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    def sizes(run):
        return [(r["call"], r["curriculum_size_per_seed"], r["success_per_seed"])
                for r in read_metrics(run)]

    assert sizes(path) == sizes(straight)
    with open(os.path.join(path, rd.METRICS_JSONL)) as f:
        assert len([json.loads(line) for line in f]) == CALLS
