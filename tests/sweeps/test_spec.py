"""Sweep specs: validation before anything trains, trial resolution, grouping by program."""

import pathlib

import pytest
import yaml

from npigym.sweeps.runner import group_trials, program_key
from npigym.sweeps.spec import SweepError, from_mapping, load_spec

BASE = {"base": "addition-macro", "overrides": ["max_digits=3"],
        "budget": {"total_env_steps": 1000}}


def spec(**kw):
    return from_mapping({**BASE, **kw})


def test_grid_times_seeds_in_a_fixed_order():
    s = spec(axes={"learning_rate": [1e-3, 3e-3], "entropy_cost": [0.0, 0.01]}, seeds=3)
    trials = s.trials()
    assert len(trials) == 12
    assert len({t.trial_id for t in trials}) == 12
    assert [t.seed for t in trials[:3]] == [0, 1, 2]
    t = trials[-1]
    assert t.config.a2c.learning_rate == 3e-3 and t.config.a2c.entropy_cost == 0.01
    assert t.config.num_seeds == 1 and t.config.seed == 2
    assert t.config.total_env_steps == 1000
    assert t.config.env_kwargs["max_digits"] == 3  # the base's overrides stay
    assert [t.trial_id for t in s.trials()] == [t.trial_id for t in trials]  # deterministic


def test_sampled_axes_are_reproducible_and_in_range():
    s = spec(axes={"learning_rate": {"log_uniform": [1e-4, 1e-2]},
                   "discount": {"uniform": [0.9, 0.999]}, "rollout_length": [8, 16]},
             samples=4, seeds=[3, 5])
    trials = s.trials()
    assert len(trials) == 2 * 4 * 2
    lrs = {t.config.a2c.learning_rate for t in trials}
    assert len(lrs) == 4 and all(1e-4 <= lr <= 1e-2 for lr in lrs)
    assert all(0.9 <= t.config.a2c.discount <= 0.999 for t in trials)
    assert [t.config.a2c.learning_rate for t in spec(
        axes={"learning_rate": {"log_uniform": [1e-4, 1e-2]},
              "discount": {"uniform": [0.9, 0.999]}, "rollout_length": [8, 16]},
        samples=4, seeds=[3, 5]).trials()] == [t.config.a2c.learning_rate for t in trials]
    ints = spec(axes={"num_envs": {"int_uniform": [4, 6]}}, samples=8, sampler="random")
    assert {t.config.a2c.num_envs for t in ints.trials()} <= {4, 5, 6}


def test_grouping_by_what_the_program_bakes_in():
    s = spec(axes={"learning_rate": [1e-3, 3e-3], "discount": [0.9, 0.99],
                   "num_envs": [8, 16]}, seeds=2)
    groups = group_trials(s.trials())
    assert len(groups) == 2  # num_envs changes shapes; lr, discount and seed do not
    assert sorted(len(g.trials) for g in groups) == [8, 8]
    assert {t.config.a2c.num_envs for t in groups[0].trials} == {8}
    shaping = spec(axes={"step_penalty": [0.0, 0.01]})  # a Python constant of the loss
    assert len(group_trials(shaping.trials())) == 2
    meta = spec(axes={"meta.learning_rate": [1e-3, 3e-3]},
                overrides=["max_digits=3", "meta.estimator=debiased"])
    assert len(group_trials(meta.trials())) == 1
    a, b = meta.trials()
    assert program_key(a.config) == program_key(b.config)


@pytest.mark.parametrize("raw, message", [
    ({"axes": {"learning_rat": [1e-3]}}, "learning_rat"),
    ({"axes": {"learning_rate": []}}, "empty"),
    ({"axes": {"learning_rate": {"log_uniform": [0.0, 1e-2]}}}, "low > 0"),
    ({"axes": {"learning_rate": {"uniform": [1e-2, 1e-3]}}}, "low < high"),
    ({"axes": {"learning_rate": {"normal": [0, 1]}}}, "one of"),
    ({"axes": {"learning_rate": {"uniform": [0.1]}}}, "[low, high]"),
    ({"axes": {"learning_rate": [1e-3, 1e-3]}}, "repeats"),
    ({"axes": {"seed": [0, 1]}}, "seeds"),
    ({"axes": {"total_env_steps": [10, 20]}}, "budget"),
    ({"axes": {"learning_rate": [-1.0]}}, "learning_rate"),
    ({"axes": {"optimizer": ["adamw"]}}, "optimizer"),
    ({"axes": {"lr": [1e-3], "a2c.lr": [1e-3]}}, "lr"),
    ({"seeds": 0}, "seeds"),
    ({"seeds": [1, 1]}, "repeats"),
    ({"samples": 3}, "sampled axis"),
    ({"sampler": "halton"}, "sampler"),
    ({"metric": {"name": "success", "mode": "up"}}, "mode"),
    ({"metric": {"name": "success", "last": 0}}, "last"),
    ({"budget": {"total_env_steps": -5}}, "total_env_steps"),
    ({"budget": {"steps": 5}}, "budget"),
    ({"axis": {"learning_rate": [1e-3]}}, "did you mean 'axes'"),
    ({"base": "no-such-preset"}, "base config"),
    ({"ray": {"scheduler": "pbt"}}, "scheduler"),
    ({"ray": {"resources_per_trial": {"cpu": -1}}}, "resources_per_trial"),
])
def test_bad_specs_fail_with_a_message_naming_the_problem(raw, message):
    with pytest.raises(SweepError, match=None) as e:
        spec(**raw)
    assert message in str(e.value), str(e.value)


def test_load_spec_overrides_and_bad_files(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text(yaml.safe_dump({**BASE, "axes": {"learning_rate": [1e-3, 3e-3]}}))
    s = load_spec(str(path), ["seeds=3", "budget.total_env_steps=2048", "num_envs=8",
                              "axes.learning_rate=[1e-2]"])
    assert s.name == "lr" and s.seeds == (0, 1, 2)
    assert [t.config.a2c.learning_rate for t in s.trials()] == [1e-2] * 3
    assert s.trials()[0].config.a2c.num_envs == 8
    assert s.trials()[0].config.total_env_steps == 2048
    with pytest.raises(SweepError, match="no sweep spec"):
        load_spec(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("axes: [unclosed")
    with pytest.raises(SweepError, match="not valid YAML"):
        load_spec(str(bad))
    bad.write_text("- a list\n")
    with pytest.raises(SweepError, match="mapping"):
        load_spec(str(bad))


EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "sweeps"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_specs_load_and_resolve(name):
    s = load_spec(str(EXAMPLES / name))
    trials = s.trials()
    assert trials and all(t.config.num_seeds == 1 for t in trials)


def test_snake_example_specs_are_the_papers_three_arms_at_75m_inner_steps():
    meta, a2c = (load_spec(str(EXAMPLES / n)) for n in ("snake-meta.yaml", "snake-a2c.yaml"))
    arms = {t.config.meta.estimator for t in meta.trials()}
    assert arms == {"debiased", "biased"} and len(meta.trials()) == 6
    assert {t.config.meta.estimator for t in a2c.trials()} == {"none"} and len(a2c.trials()) == 3
    # Each meta update also takes an outer rollout of the same size: 150M counted = 75M inner.
    assert {t.config.total_env_steps for t in meta.trials()} == {150_000_000}
    assert {t.config.total_env_steps for t in a2c.trials()} == {75_000_000}
    assert len(group_trials(meta.trials())) == 2


def test_trials_per_program_cuts_each_program_into_runs_of_that_many_trials():
    axes = {"learning_rate": [1e-3, 3e-3], "rollout_length": [8, 16]}
    whole = group_trials(spec(axes=axes, seeds=3).trials())
    assert [len(g.trials) for g in whole] == [6, 6]  # rollout_length changes the program
    s = spec(axes=axes, seeds=3, trials_per_program=4)
    cut = group_trials(s.trials(), s.trials_per_program)
    assert [len(g.trials) for g in cut] == [4, 2, 4, 2]
    assert len({g.group_id for g in cut}) == 4
    # The same trials in the same order, each in a program with its own kind only.
    assert [t.trial_id for g in cut for t in g.trials] == [t.trial_id for g in whole
                                                           for t in g.trials]
    assert all(len({program_key(t.config) for t in g.trials}) == 1 for g in cut)
    # Left out, the spec (and so its digest: sweep directories made before) is unchanged.
    assert "trials_per_program" not in spec(axes=axes).to_dict()
    assert s.to_dict()["trials_per_program"] == 4


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_trials_per_program_must_be_a_positive_integer(value):
    with pytest.raises(SweepError, match="trials_per_program: an integer >= 1"):
        spec(trials_per_program=value)
