"""The local backend: one vmapped program per group, equal to training alone, resumable."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import yaml

from npigym.cli import main
from npigym.experiments import run_dir as rd
from npigym.experiments.logger import read_metrics
from npigym.experiments.train import build, train
from npigym.sweeps.runner import DONE, FAILED, GROUPS, read_index, run_local
from npigym.sweeps.spec import SweepError, from_mapping

# Three calls of two updates on 8 envs x 8 steps; lr 1e10 diverges (a failed trial).
RAW = {"name": "tiny", "base": "addition-macro",
       "overrides": ["max_digits=3", "num_envs=8", "rollout_length=8", "updates_per_call=2"],
       "axes": {"learning_rate": [1e-3, 1e10]}, "seeds": [0, 1],
       "budget": {"total_env_steps": 8 * 8 * 2 * 3}, "checkpoint_every": 1,
       "metric": {"name": "return", "last": 2}}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """An uninterrupted sweep of RAW."""
    spec = from_mapping(RAW)
    path = str(tmp_path_factory.mktemp("sweep") / "tiny")
    index = run_local(path, spec, spec.trials(), progress=False)
    return spec, path, index


def _params(run_dir, config):
    init = build(config)[3]
    ckpt = rd.Checkpointer(run_dir)
    try:
        state, progress = ckpt.restore(rd.abstract(jax.eval_shape(init)))
    finally:
        ckpt.close()
    return state.params, progress


def test_trials_are_ordinary_run_directories_with_one_record_per_call(swept):
    spec, path, index = swept
    records = index["trials"]
    assert len(records) == 4
    good = [k for k, r in records.items() if r["values"]["learning_rate"] == 1e-3]
    for k in good:
        r = records[k]
        assert r["status"] == DONE and np.isfinite(r["value"]) and r["calls"] == 3
        run = os.path.join(path, r["run_dir"])
        assert rd.is_run_dir(run)
        assert [m["call"] for m in read_metrics(run)] == [1, 2, 3]
    assert read_index(path) == json.loads(json.dumps(index))  # what is on disk


def test_a_diverging_trial_fails_alone_and_its_group_trains_on(swept):
    spec, path, index = swept
    bad = [r for r in index["trials"].values() if r["values"]["learning_rate"] == 1e10]
    assert bad and all(r["status"] == FAILED and "non-finite" in r["error"] for r in bad)
    for r in bad:  # its run directory keeps the calls before it diverged, all finite
        calls = [m["call"] for m in read_metrics(os.path.join(path, r["run_dir"]))]
        assert calls == list(range(1, len(calls) + 1)) and len(calls) < 3


def test_a_vmapped_trial_equals_the_same_config_trained_alone(swept, tmp_path):
    spec, path, index = swept
    trial = next(t for t in spec.trials() if t.seed == 1 and t.config.a2c.learning_rate == 1e-3)
    alone = train(trial.config, run_dir=str(tmp_path / "alone"), progress=False,
                  final_eval=False)
    a, _ = _params(alone, trial.config)
    b, progress = _params(os.path.join(path, index["trials"][trial.trial_id]["run_dir"]),
                          trial.config)
    assert progress["calls"] == 3
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)
    ra = [m["return"] for m in read_metrics(alone)]
    rb = [m["return"] for m in read_metrics(os.path.join(path, trial.trial_id.join(
        ["trials/", ""])))]
    np.testing.assert_allclose(ra, rb, rtol=1e-4)


def _checkpointed(groups):
    """Whether some group has a finished checkpoint (orbax renames it to its step at the end)."""
    try:
        return any(d.isdigit() for g in os.listdir(groups)
                   for d in os.listdir(os.path.join(groups, g, rd.CHECKPOINTS)))
    except OSError:  # not created yet
        return False


def test_a_killed_sweep_resumes_to_the_same_results(swept, tmp_path):
    spec, _, reference = swept
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(RAW))
    path = str(tmp_path / "resumed")
    proc = subprocess.Popen([sys.executable, "-m", "npigym.cli", "sweep", str(spec_file),
                             "--dir", path, "--quiet", "--no-report"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    groups = os.path.join(path, GROUPS)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:  # the first checkpoint, then -9
            if _checkpointed(groups):
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert read_index(path)["trials"], "the sweep was killed before it wrote its index"
    index = run_local(path, from_mapping(RAW), spec.trials(), progress=False)
    for k, r in reference["trials"].items():
        assert index["trials"][k]["status"] == r["status"]
        assert index["trials"][k]["calls"] == r["calls"]
        np.testing.assert_allclose(index["trials"][k]["value"], r["value"], rtol=1e-6,
                                   equal_nan=True)
        calls = [m["call"] for m in read_metrics(os.path.join(path, r["run_dir"]))]
        assert calls == sorted(set(calls))  # no call logged twice
    # Finished trials are never rerun: a third run trains nothing and changes nothing.
    def stamps():
        return {f: os.path.getmtime(f) for r in index["trials"].values()
                for f in (os.path.join(path, r["run_dir"], n)
                          for n in (rd.METRICS_JSONL, rd.CONFIG)) if os.path.exists(f)}

    before = stamps()
    again = run_local(path, from_mapping(RAW), spec.trials(), progress=False)
    assert json.dumps(again["trials"]) == json.dumps(index["trials"])  # NaN != NaN in a dict
    assert before == stamps() and before


def test_a_metric_the_runs_do_not_log_fails_before_training(tmp_path):
    spec = from_mapping({**RAW, "metric": "sucess"})
    with pytest.raises(SweepError, match="did you mean success"):
        run_local(str(tmp_path / "s"), spec, spec.trials(), progress=False)
    assert not os.path.exists(tmp_path / "s" / "trials")


def test_another_spec_in_the_same_directory_is_refused(swept):
    spec, path, _ = swept
    other = from_mapping({**RAW, "seeds": [0]})
    with pytest.raises(SweepError, match="another sweep"):
        run_local(path, other, other.trials(), progress=False)


def test_keep_best_is_refused_by_the_local_backend(tmp_path):
    spec = from_mapping({**RAW, "overrides": [*RAW["overrides"], "keep_best=true"]})
    with pytest.raises(SweepError, match="keep_best is a `npigym train` option"):
        run_local(str(tmp_path / "s"), spec, spec.trials(), progress=False)
    assert not os.path.exists(tmp_path / "s")


def test_cli_status_and_report(swept, capsys):
    _, path, _ = swept
    assert main(["sweep", "status", path]) == 0
    out = capsys.readouterr().out
    assert "2 done, 2 failed" in out
    assert main(["sweep", "report", path]) == 0
    out = capsys.readouterr().out
    assert "IQM return" in out and "learning_rate=0.001" in out
    text = open(os.path.join(path, "report.md")).read()
    assert "npigym train --config addition-macro" in text and "num_seeds=2" in text
    assert "non-finite" in text  # the failed trials are listed with why
    for png in ("report_scores.png", "report_curves.png"):
        assert os.path.getsize(os.path.join(path, png)) > 1000
    with pytest.raises(SystemExit, match="not a sweep directory"):
        main(["sweep", "report", str(os.path.dirname(path))])
    with pytest.raises(SystemExit, match="usage"):
        main(["sweep", "report"])
