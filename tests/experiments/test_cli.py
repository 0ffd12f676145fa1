"""`npigym train`, `eval`, `play RUN_DIR` and `train --resume` on a tiny run."""

import json
import os

import pytest

from npigym import cli
from npigym.experiments import run_dir as rd

TINY = ["num_envs=16", "rollout_length=8", "updates_per_call=5", "core_size=16",
        "encoder_layers=[16]", "head_layers=[16]", "embed_size=4", "max_digits=2",
        "eval_lengths=[2]", "eval_episodes=4", "checkpoint_every=1", "num_seeds=2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("runs") / "tiny")
    code = cli.main(["train", "--env", "Addition-v0", "--config", "addition-macro",
                     "--run-dir", path, "--quiet", "total_env_steps=1280", *TINY])
    assert code == 0
    return path


def test_train__writes_a_run_directory(run, capsys):
    names = set(os.listdir(run))
    assert {rd.CONFIG, rd.METRICS_JSONL, rd.METRICS_CSV, rd.TENSORBOARD, rd.CHECKPOINTS,
            rd.CURVES, rd.EVAL_MD, rd.EVAL_JSON, rd.PROGRESS} <= names
    assert os.listdir(os.path.join(run, rd.TENSORBOARD))
    with open(os.path.join(run, rd.METRICS_JSONL)) as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 2  # 1,280 steps / (16 envs x 8 steps x 5 updates)
    assert records[-1]["env_steps"] == 1280 and len(records[-1]["success_per_seed"]) == 2
    with open(os.path.join(run, rd.EVAL_JSON)) as f:
        rows = json.load(f)["rows"]
    assert sorted({(r["length"], r["seed"]) for r in rows}) == [(2, 0), (2, 1)]
    with open(os.path.join(run, rd.CONFIG)) as f:
        assert "modes: macro" in f.read()


def test_eval__prints_and_saves_a_length_table(run, capsys):
    assert cli.main(["eval", run, "--lengths", "4", "--episodes", "4"]) == 0
    out = capsys.readouterr().out
    assert "| size | seed 0 | seed 1 | mean success" in out and "\n| 4 |" in out
    with open(os.path.join(run, rd.EVAL_MD)) as f:
        assert "| 4 |" in f.read()


def test_play__shows_the_trained_agent(run, capsys, tmp_path):
    gif = tmp_path / "agent.gif"
    code = cli.main(["play", run, "--digits", "2", "--no-clear", "--compact", "--max-steps", "6",
                     "--gif", str(gif)])
    out = capsys.readouterr().out
    assert code in (0, 1)  # an untrained agent may not solve it
    assert "steps, return" in out and gif.stat().st_size > 1000


def test_train__resume_continues_from_the_last_checkpoint(run, capsys):
    code = cli.main(["train", "--resume", run, "--quiet", "--no-eval", "total_env_steps=1920"])
    assert code == 0
    assert "resuming" in capsys.readouterr().out
    with open(os.path.join(run, rd.METRICS_JSONL)) as f:
        records = [json.loads(line) for line in f]
    assert [r["call"] for r in records] == [1, 2, 3]
    assert records[-1]["env_steps"] == 1920
    with open(os.path.join(run, rd.PROGRESS)) as f:
        assert json.load(f)["calls"] == 3


@pytest.mark.parametrize("argv, message", [
    (["train", "--env", "Addition-v0", "learning_rate=-1"], "a2c.learning_rate must be"),
    (["train", "--env", "Addition-v0", "nope=1"], "unknown config key 'nope'"),
    (["train", "--env", "NoSuchEnv-v0"], "unknown env 'NoSuchEnv-v0'"),
    (["train", "--env", "Snake-v1", "credit=frame", "total_env_steps=1"], "program-machine"),
    (["eval", "/nonexistent"], "not a run directory"),
    (["play", "/", "--digits", "2"], "not a run directory"),
    (["train", "--agent", "npi"], "needs --traces"),
    (["train", "--agent", "npi", "--env", "Addition-v0", "--traces", "t.npz"], "a2c options"),
    (["train", "--traces", "t.npz"], "--traces is for --agent npi"),
    (["train", "--agent", "npi", "--traces", "/nonexistent.npz"], "nonexistent.npz"),
])
def test_cli__bad_training_input_exits_with_a_message(argv, message, tmp_path):
    with pytest.raises(SystemExit) as error:
        cli.main([*argv, "--runs-root", str(tmp_path)] if argv[0] == "train" else argv)
    assert message in str(error.value)


def test_train__resume_refuses_to_change_what_is_trained(run):
    with pytest.raises(SystemExit, match="cannot change"):
        cli.main(["train", "--resume", run, "learning_rate=0.5"])
