"""NPI training: the loss falls, sampling and the curriculum, frozen cores, run directories
(checkpoint round trip, evaluation, the command line), clear errors for bad inputs."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from npigym import cli, traces
from npigym.agents.npi import data as npi_data
from npigym.agents.npi import training
from npigym.agents.npi.model import MEMORY, ProgramTable, make_model, task_layout, trainable_mask
from npigym.experiments import npi_runs
from tests.agents.npi_helpers import TINY, addition_traces, fig3b_traces

# One training configuration for every test here: the jitted update and error counts are
# cached per (model, settings), so the tests and the command-line run compile them once.
TRAIN = dict(batch_rows=8, learning_rate=3e-3, sampling="curriculum", curriculum_every=50,
             error_chunk=16)
TINY_KEYS = [f"{k}={list(v) if isinstance(v, tuple) else v}"
             for k, v in dataclasses.asdict(TINY).items()]


@pytest.fixture(scope="module")
def addition():
    env, table, data = addition_traces()
    td = npi_data.task_frames(data, table, "addition")
    packed = npi_data.pack(td, table, npi_data.block_length([td]))
    return make_model(TINY, table), {"addition": packed}


@pytest.fixture(scope="module")
def trained(addition):
    """150 updates on 16 short additions: the log records and the summary."""
    model, data = addition
    records = []
    config = training.TrainConfig(num_updates=150, log_every=25, **TRAIN)
    params = jax.jit(model.init)(jax.random.PRNGKey(0))
    _, summary = training.train(model, params, data, config, log=records.append)
    return records, summary


@pytest.mark.slow
def test_training__loss_falls_on_a_tiny_dataset(trained):
    records, summary = trained
    assert [r["update"] for r in records] == [25, 50, 75, 100, 125, 150]
    assert records[-1]["loss"] < 0.4 * records[0]["loss"]
    assert records[-1]["addition/token_acc"] > records[0]["addition/token_acc"]
    assert set(summary["program_error"]["addition"]) == {"ADD", "ADD1", "CARRY", "LSHIFT"}
    assert "program_error" in records[-1]  # the curriculum's current estimate
    # keep_best: the parameters of the estimate (every 50 updates) with the fewest wrong tokens
    assert summary["selected_update"] in (0, 50, 100, 150)
    assert summary["wrong_tokens"]["addition"] <= min(r["hard_rows"]["addition"] * 16
                                                      for r in records)


def test_training__sampling_weights():
    rows = np.asarray([3, 3, 3, 4, 5, 5])
    uniform = training.program_weights("programs", [3, 4, 5])
    probs = training.row_probs(rows, uniform)
    np.testing.assert_allclose([probs[rows == p].sum() for p in (3, 4, 5)], [1 / 3] * 3,
                               rtol=1e-6)
    by_rows = training.program_weights("rows", [3, 4, 5], row_counts={3: 3, 4: 1, 5: 2})
    np.testing.assert_allclose(training.row_probs(rows, by_rows), [1 / 6] * 6, rtol=1e-6)
    hard = training.program_weights("curriculum", [3, 4, 5], {3: 0.0, 4: 0.5, 5: 0.0}, 0.1)
    assert hard[4] > 0.98 and abs(sum(hard.values()) - 1) < 1e-6  # softmax(error / T)
    same = training.program_weights("curriculum", [3, 4, 5], {3: 0.0, 4: 0.0, 5: 0.0}, 0.1)
    np.testing.assert_allclose(list(same.values()), [1 / 3] * 3)


def test_training__paper_schedule_and_bad_config():
    config = training.TrainConfig(lr_schedule="paper", learning_rate=1e-4)
    state = training.make_optimizer(config).init({"w": np.zeros(1, np.float32)})
    assert state is not None
    schedule = training.learning_rate_schedule(config)
    np.testing.assert_allclose([schedule(0), schedule(9_999), schedule(10_000),
                                schedule(20_000)], [1e-4, 1e-4, 0.95e-4, 0.95**2 * 1e-4],
                               rtol=1e-6)  # the paper: x0.95 every 10,000 updates
    with pytest.raises(ValueError, match="sampling"):
        training.TrainConfig(sampling="random")
    with pytest.raises(ValueError, match="hard_fraction"):
        training.TrainConfig(hard_fraction=1.0)


def test_training__frozen_core_changes_only_the_new_rows(addition):
    model, data = addition
    params = jax.jit(model.init)(jax.random.PRNGKey(0))
    mask = trainable_mask(params, model.table, ["CARRY"])
    config = training.TrainConfig(**TRAIN)
    optimizer = training.make_optimizer(config)
    update = training.make_update(model, config, ["addition"])
    state = training.TrainState(params, optimizer.init(params), jax.numpy.zeros((), int))
    probs = {"addition": training.row_probs(
        data["addition"].row_program, training.program_weights("programs", [3, 4, 5, 6]))}
    hard = {"addition": np.zeros(data["addition"].targets.valid.shape, bool)}
    state, metrics = update(state, data, probs, probs, hard, jax.random.PRNGKey(1), mask)
    assert int(state.step) == 1 and np.isfinite(float(metrics["loss"]))
    row = model.table.names.index("CARRY")
    for module in params:
        for name in params[module]:
            before, after = np.asarray(params[module][name]), np.asarray(state.params[module][name])
            if module == MEMORY:
                changed = np.any(before != after, axis=1)
                assert changed[row] and changed.sum() == 1
            else:
                np.testing.assert_array_equal(before, after)


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("npi") / "add.npz")
    traces.save(addition_traces()[2], path)
    return path


def test_runs__checkpoint_round_trip(tmp_path, trace_file):
    config = npi_runs.config_from_dict({
        "traces": [trace_file], "model": dataclasses.asdict(TINY), "num_updates": 2})
    prepared = npi_runs.prepare(config)
    params = jax.tree.map(lambda x: x + 0.5, prepared.params)  # not the initialiser's values
    run_dir = str(tmp_path / "run")
    npi_runs.save_run(run_dir, config, prepared.meta, params, {"updates": 2, "wall_time": 1.0})
    run = npi_runs.load_run(run_dir)
    assert run.config == config and run.model.table == prepared.model.table
    jax.tree.map(np.testing.assert_array_equal, run.params, jax.device_get(params))
    assert run.meta["end_modes"]["addition"]["ADD"] == "return"
    assert run.meta["training"]["updates"] == 2
    assert run.meta["data"]["addition"]["episodes"] == 16


def test_runs__clear_errors_for_bad_inputs(tmp_path, trace_file):
    with pytest.raises(npi_runs.RunConfigError, match="no trace files"):
        npi_runs.prepare(npi_runs.RunConfig())
    with pytest.raises(npi_runs.RunConfigError, match="unknown key"):
        npi_runs.config_from_dict({"learning_rat": 1e-3})
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a trace file")
    with pytest.raises(SystemExit, match=r"npi-train: .*not a readable"):
        npi_runs.main(["npi-train", "--traces", str(junk), "--run-dir", str(tmp_path / "r")])
    with pytest.raises(SystemExit, match="not an NPI run directory"):
        npi_runs.main(["npi-eval", str(tmp_path), "--lengths", "2"])
    # traces of one env cannot train a model built on another's library
    run = npi_runs.config_from_dict({"traces": [trace_file], "model": dataclasses.asdict(TINY)})
    prepared = npi_runs.prepare(run)
    _, _, fig3b = fig3b_traces()
    sort_env_layout = task_layout(__import__("npigym").make("Sorting-v0", max_length=3))
    table = ProgramTable.build([sort_env_layout], base=prepared.model.table)
    with pytest.raises(npi_data.TraceInputError, match="another env"):
        npi_data.task_frames(fig3b, table, "sorting")


def test_runs__command_line_train_eval_play(tmp_path, trace_file, capsys):
    run_dir = str(tmp_path / "cli_run")
    # The user's entry points: `npigym train --agent npi`, `npigym eval`, `npigym play`.
    code = cli.main(["train", "--agent", "npi", "--traces", trace_file, "--run-dir", run_dir,
                     "--no-eval", "num_updates=4", "log_every=2", "eval_batch=4", *TINY_KEYS,
                     *[f"{k}={v}" for k, v in TRAIN.items()]])
    assert code == 0 and npi_runs.is_npi_run(run_dir)
    assert npi_runs.load_run(run_dir).config.model == TINY
    for name in ("config.yaml", "npi.json", "metrics.jsonl", "learning_curves.png"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        assert [json.loads(line)["update"] for line in f] == [2, 4]
    assert cli.main(["eval", run_dir, "--lengths", "2", "--episodes", "4"]) == 0
    assert "| Addition-v0 | 2 | 4 |" in capsys.readouterr().out
    assert os.path.exists(os.path.join(run_dir, "eval.json"))
    cli.main(["play", run_dir, "--digits", "2", "--compact", "--no-clear", "--max-steps", "5"])
    assert "solved in" in capsys.readouterr().out  # 4 updates: it plays, it cannot add
