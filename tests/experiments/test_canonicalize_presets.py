"""The Canonicalize presets (macro, hierarchical) and ``eval_variants`` (seen / unseen models)."""

import io
import json
import os

import numpy as np
import pytest

from npigym.experiments import run_dir as rd
from npigym.experiments import train as train_mod
from npigym.experiments.config import ConfigError, load_config, read_config, save_config
from npigym.experiments.evaluate import length_table, load_run, variant_config
from npigym.experiments.factory import make_env

PRESETS = ("canonicalize-macro", "canonicalize-hierarchical")
# Tiny shapes for the 2-core CI machine: 8 x 8 renders (the hierarchical preset's CNN then
# ends at 1 x 1), 4 envs x 4 steps, one update per call, two calls.
TINY = ["image_size=8", "num_envs=4", "rollout_length=4", "updates_per_call=1",
        "encoder_layers=[8]", "head_layers=[8]", "checkpoint_every=1", "total_env_steps=32",
        "eval_lengths=[1, 8]", "eval_episodes=2"]


@pytest.fixture(scope="module", params=PRESETS)
def tiny_run(request, tmp_path_factory):
    """A two-call training run of each preset, with its final evaluation (seen and unseen)."""
    path = str(tmp_path_factory.mktemp("canonicalize") / request.param)
    config = load_config(request.param, TINY)
    out = io.StringIO()
    train_mod.train(config, run_dir=path, progress=False, out=out)
    return request.param, path, out.getvalue()


def test_presets__train_on_the_seen_models_and_evaluate_seen_and_unseen():
    for name in PRESETS:
        config = load_config(name)
        assert config.env == "Canonicalize-v0"
        assert config.eval_lengths == tuple(range(1, 9))  # every rotation distance
        assert config.eval_variants == {"unseen": {"split": "unseen"}}
        train = make_env(config).unwrapped.generator
        task = make_env(config, whole_task=True).generator
        unseen = make_env(variant_config(config, "unseen"), whole_task=True).generator
        assert (train.split, task.split, unseen.split) == ("seen", "seen", "unseen")
        # Training draws fresh models of the seen half; evaluation plays the catalogues.
        assert train.num_models is None and task.num_models == unseen.num_models == 64
    macro = load_config("canonicalize-macro")
    assert macro.env_kwargs["modes"] == "macro" and macro.network.conv_channels == ()
    hierarchical = load_config("canonicalize-hierarchical")
    assert "modes" not in hierarchical.env_kwargs and hierarchical.a2c.credit == "frame"
    assert set(hierarchical.curriculum) == {"GOTO", "HGOTO", "VGOTO", "LGOTO", "RGOTO",
                                            "UGOTO", "DGOTO"}


def test_presets__size_is_the_rotation_distance():
    config = load_config("canonicalize-macro", ["image_size=8"])
    for distance in (1, 8):
        generator = make_env(config, size=distance, whole_task=True).generator
        d_az, d_el = np.abs(generator.support()[:, :2] - generator.support()[:, 2:]).T
        d_az = np.minimum(d_az, 24 - d_az)
        assert set(d_az + d_el) == {distance}


def test_presets__one_training_call_and_the_final_evaluation_on_both_splits(tiny_run):
    name, path, printed = tiny_run
    assert "variant unseen {'split': 'unseen'}" in printed
    with open(os.path.join(path, rd.EVAL_JSON)) as f:
        saved = json.load(f)
    assert {r["length"] for r in saved["rows"]} == {1, 8}
    assert all("variant" not in r for r in saved["rows"])  # the task's rows as before
    unseen = saved["variants"]["unseen"]
    assert {r["length"] for r in unseen} == {1, 8}
    assert all(r["variant"] == "unseen" and 0 <= r["success"] <= 1 for r in unseen)
    with open(os.path.join(path, rd.EVAL_MD)) as f:
        assert f.read().count("| size |") == 2


def test_eval_variants__rows_are_marked_and_reproduce_the_final_evaluation(tiny_run):
    _, path, _ = tiny_run
    config, _, params, _ = load_run(path)
    with pytest.raises(ConfigError, match="no eval variant 'held-out'"):
        length_table(config, params, [1], 2, variant="held-out")
    # The same keys as the final evaluation's: the same instances, the same greedy episodes.
    rows = length_table(config, params, [1], 2, variant="unseen")
    with open(os.path.join(path, rd.EVAL_JSON)) as f:
        saved = [r for r in json.load(f)["variants"]["unseen"] if r["length"] == 1]
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows] == \
        [{k: v for k, v in r.items() if k not in drop} for r in saved]
    assert "eval_variants" in train_mod.RESUMABLE_KEYS  # changing them retrains nothing


def test_eval_variants__yaml_round_trip_and_key_value(tmp_path):
    config = load_config(None, ["env=Canonicalize-v0",
                                "eval_variants={unseen: {split: unseen}, wide: {num_models: 8}}"])
    assert config.eval_variants == {"unseen": {"split": "unseen"}, "wide": {"num_models": 8}}
    path = str(tmp_path / "config.yaml")
    save_config(config, path)
    assert read_config(path) == config
    assert load_config(None).eval_variants == {}


@pytest.mark.parametrize("words, message", [
    (["eval_variants=3"], "eval_variants must be a mapping"),
    (["eval_variants={unseen: 3}"], "eval_variants.unseen must be a mapping of env keywords"),
    (["eval_variants={unseen: {}}"], "eval_variants.unseen changes nothing"),
    (["eval_variants={unseen: {splt: unseen}}"],
     "eval_variants.unseen: 'splt' is not a keyword of Canonicalize-v0; it takes: "),
    (["eval_variants={' ': {split: unseen}}"], "eval_variants names must be non-empty"),
])
def test_config__bad_eval_variants_name_the_key(words, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, ["env=Canonicalize-v0", *words])
    assert message in str(error.value)


def test_eval_variants__a_bad_value_fails_when_the_env_is_made():
    config = load_config(None, ["env=Canonicalize-v0", "eval_variants={unseen: {split: test}}"])
    with pytest.raises(ConfigError, match="split must be one of"):
        make_env(variant_config(config, "unseen"), whole_task=True)
