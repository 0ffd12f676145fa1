"""`npigym curriculum`: plans are checked, generations admitted in order, and a plan resumed
after an interruption never retrains a finished generation."""

import json
import os

import pytest
import yaml

from npigym.experiments import skill_curriculum as sc
from npigym.skills.library import read_info

TINY = ["num_seeds=1", "num_envs=8", "rollout_length=4"]
PLAN = {"generations": [
    {"name": "add", "config": "addition-macro", "overrides": [*TINY, "max_digits=3"],
     "program": "ADD", "train_size": 3, "test_sizes": [3], "target": 0.0, "minutes": 0.05,
     "round_minutes": 0.05, "episodes": 4},
    {"name": "mul", "config": "multiplication-macro", "overrides": [*TINY, "max_digits=2"],
     "skills": {"ADD": "add"}, "train_size": 2, "test_sizes": [2], "target": 0.0,
     "minutes": 0.05, "round_minutes": 0.05, "episodes": 4},
]}


def write_plan(tmp_path, plan):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return str(path)


def test_bad_plans_are_clear_errors(tmp_path):
    with pytest.raises(sc.PlanError, match="neither a file nor a built-in plan"):
        sc.read_plan("no-such-plan")
    with pytest.raises(sc.PlanError, match="unknown keys"):
        sc.read_plan(write_plan(tmp_path, {"generations": [{"name": "a", "config": "x",
                                                             "epochs": 3}]}))
    with pytest.raises(sc.PlanError, match="not earlier generations"):
        sc.read_plan(write_plan(tmp_path, {"generations": [
            {"name": "mul", "config": "multiplication-macro", "skills": {"ADD": "add"}},
            {"name": "add", "config": "addition-macro"}]}))
    with pytest.raises(sc.PlanError, match="non-empty 'generations'"):
        sc.read_plan(write_plan(tmp_path, {"generations": []}))
    with pytest.raises(sc.PlanError, match="target must be"):
        sc.read_plan(write_plan(tmp_path, {"generations": [{"name": "a", "config": "x",
                                                             "target": 2}]}))
    broken = tmp_path / "broken.yaml"
    broken.write_text("generations: [")
    with pytest.raises(sc.PlanError, match="not valid YAML"):
        sc.read_plan(str(broken))
    assert [g.name for g in sc.read_plan("arithmetic")] == ["add", "mul", "dot"]


@pytest.mark.slow
def test_a_plan_resumes_without_retraining_an_admitted_generation(tmp_path, monkeypatch):
    plan, directory = write_plan(tmp_path, PLAN), str(tmp_path / "plan")
    real = sc.run_generation

    def killed_at_mul(gen, *args, **kwargs):
        if gen.name == "mul":
            raise KeyboardInterrupt  # the plan is killed once ADD is in the library
        return real(gen, *args, **kwargs)

    monkeypatch.setattr(sc, "run_generation", killed_at_mul)
    with pytest.raises(KeyboardInterrupt):
        sc.run_plan(plan, directory)
    state = json.loads((tmp_path / "plan" / sc.STATE).read_text())
    assert state["generations"]["add"]["status"] == "admitted"
    add_log = (tmp_path / "plan" / "add" / "run" / "metrics.jsonl").read_text()

    monkeypatch.setattr(sc, "run_generation", real)
    report = sc.run_plan(plan, directory)
    state = json.loads((tmp_path / "plan" / sc.STATE).read_text())
    assert state["generations"]["mul"]["status"] == "admitted"
    assert (tmp_path / "plan" / "add" / "run" / "metrics.jsonl").read_text() == add_log
    text = open(report).read()
    assert "| add | addition-macro | - | admitted |" in text and "hash unchanged" in text
    assert os.path.exists(os.path.join(directory, sc.REPORT_PNG))
    # MUL's skill remembers the ADD skill its env binds, pinned to the admitted version.
    mul = read_info(state["generations"]["mul"]["skill_path"])
    assert mul.program == "MUL" and list(mul.env_skills) == ["ADD"]
