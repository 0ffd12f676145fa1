"""Best-checkpoint selection (``keep_best=true``): validation at checkpoints, ``best/``, resume,
and ``npigym eval --checkpoint best``."""

import io
import os
import shutil

import jax
import numpy as np
import pytest

from npigym import cli
from npigym.experiments import best as best_mod
from npigym.experiments import run_dir as rd
from npigym.experiments import train as train_mod
from npigym.experiments.config import ConfigError, load_config
from npigym.experiments.evaluate import load_run
from npigym.experiments.logger import read_metrics

# The size curriculum's tiny Sorting run (the same compiled training functions when both
# modules run in one process: keep_best does not change what is built), keeping the best.
TINY = ["num_envs=8", "rollout_length=8", "updates_per_call=4", "encoder_layers=[8]",
        "head_layers=[8]", "min_length=1", "max_length=4", "num_seeds=2",
        "checkpoint_every=2", "eval_lengths=[4]", "eval_episodes=2", "size_curriculum=true",
        "size_curriculum_threshold=0.3", "size_curriculum_decay=0.0"]
BEST = ["keep_best=true", "best_size=3", "best_episodes=8"]
PER_CALL = 8 * 8 * 4
CALLS = 6


def tiny_config(calls=CALLS):
    return load_config("sorting-macro", [*TINY, *BEST, f"total_env_steps={calls * PER_CALL}"])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("best") / "straight")
    train_mod.train(tiny_config(), run_dir=path, progress=False, final_eval=False,
                    out=io.StringIO())
    return path


def best_leaves(run):
    config = tiny_config()
    _, _, _, init, _ = train_mod.build(config)
    params, record = best_mod.load_best(run, jax.eval_shape(init).params)
    return [np.asarray(x) for x in jax.tree.leaves(params)], record


def test_keep_best__scores_every_checkpoint_and_keeps_each_seeds_best(straight):
    records = read_metrics(straight)
    scored = {r["call"]: r["validation_success_per_seed"] for r in records
              if "validation_success_per_seed" in r}
    assert sorted(scored) == [2, 4, 6]  # the checkpoints (every 2 calls, and the end)
    _, record = best_leaves(straight)
    assert record["size"] == 3 and record["episodes"] == 8
    assert os.path.exists(os.path.join(straight, best_mod.BEST, best_mod.BEST_JSON))
    for i, kept in enumerate(record["seeds"]):
        scores = {call: s[i] for call, s in scored.items()}
        top = max(scores.values())
        assert kept["seed"] == i and kept["success"] == top
        assert kept["call"] == max(c for c, s in scores.items() if s == top)  # ties: later
        assert kept["env_steps"] == kept["call"] * PER_CALL
    assert records[-1]["best_validation_success_per_seed"] == [
        s["success"] for s in record["seeds"]]


def test_keep_best__the_kept_params_are_the_scored_ones(straight):
    config, network, params, record = load_run(straight, best=True)
    assert len(params) == 2 and record["seeds"][1]["seed"] == 1
    keeper = best_mod.BestKeeper(config, str(straight), None)
    stacked = jax.tree.map(lambda *x: np.stack(x), *params)
    success, _ = keeper._score(stacked)
    np.testing.assert_array_equal(np.asarray(success, np.float64),
                                  [s["success"] for s in record["seeds"]])
    # The best of a seed whose best call is the last is the last checkpoint's params.
    _, _, latest, _ = load_run(straight)
    for i, kept in enumerate(record["seeds"]):
        if kept["call"] == CALLS:
            for x, y in zip(jax.tree.leaves(params[i]), jax.tree.leaves(latest[i])):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


class StopError(Exception):
    pass


def stop_after(calls):
    def on_call(record):
        if record["call"] == calls:
            raise StopError

    return on_call


def test_keep_best__an_interrupted_run_resumes_to_the_same_best_bit_for_bit(straight, tmp_path):
    path = str(tmp_path / "resumed")
    with pytest.raises(StopError):  # stopped after call 3 (saved, as a crash or a signal would be)
        train_mod.train(tiny_config(), run_dir=path, progress=False, final_eval=False,
                        out=io.StringIO(), on_call=stop_after(3))
    _, partial = best_leaves(path)
    assert {s["call"] for s in partial["seeds"]} == {2}
    train_mod.train(tiny_config(), run_dir=path, resume=True, progress=False,
                    final_eval=False, out=io.StringIO())
    (a, record_a), (b, record_b) = best_leaves(straight), best_leaves(path)
    assert record_a == record_b
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    timings = ("wall_time", "steps_per_s", "validation_seconds")

    def logged(run):
        return [{k: v for k, v in r.items() if k not in timings} for r in read_metrics(run)]

    assert logged(path) == logged(straight)


def test_eval__checkpoint_best_writes_its_own_table(straight, capsys):
    assert cli.main(["eval", straight, "--checkpoint", "best", "--lengths", "3",
                     "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "best checkpoint: seed 0 from call" in out and "| 3 |" in out
    assert os.path.exists(os.path.join(straight, rd.EVAL_BEST_MD))
    assert not os.path.exists(os.path.join(straight, rd.EVAL_MD))  # the latest's untouched


def test_eval__checkpoint_best_of_a_run_without_one_is_one_line(straight, tmp_path):
    path = str(tmp_path / "nobest")
    shutil.copytree(straight, path)
    shutil.rmtree(os.path.join(path, best_mod.BEST))
    with pytest.raises(SystemExit, match=r"no best checkpoint .* keep_best=true"):
        cli.main(["eval", path, "--checkpoint", "best"])


@pytest.mark.parametrize("words, message", [
    (["best_size=3"], "best_size and best_episodes need keep_best=true"),
    (["keep_best=true", "best_size=0"], "best_size must be >= 1"),
    (["keep_best=true", "best_episodes=0"], "best_episodes must be >= 1"),
    (["keep_best=1"], "keep_best must be bool"),
])
def test_config__bad_keep_best_values_name_the_key(words, message):
    with pytest.raises(ConfigError, match=message):
        load_config("addition-macro", words)
