"""Fault injection on `npigym train` runs: kills, corrupted files, non-finite values, odd actions.

Tiny configs (4 envs x 4 steps x 2 updates per call); the uninterrupted run is trained once
per module and copied for each corruption, and in-process resumes reuse its compiled calls.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from npigym import cli
from npigym.experiments import run_dir as rd
from npigym.experiments import train as train_mod
from npigym.experiments.config import load_config, read_config
from npigym.experiments.logger import read_metrics

TINY = ["num_envs=4", "rollout_length=4", "updates_per_call=2", "core_size=8",
        "encoder_layers=[8]", "head_layers=[8]", "embed_size=4", "max_digits=2",
        "modes=macro", "checkpoint_every=1", "eval_lengths=[2]", "eval_episodes=2"]
PER_CALL = 4 * 4 * 2
CALLS = 8


def tiny_config(calls: int = CALLS):
    return load_config(None, [*TINY, f"total_env_steps={calls * PER_CALL}"],
                       base={"env": "Addition-v0"})


def final_params(run: str):
    config = read_config(os.path.join(run, rd.CONFIG))
    _, _, _, init, _ = train_mod.build(config)
    checkpointer = rd.Checkpointer(run)
    try:
        state, progress = checkpointer.restore(rd.abstract(jax.eval_shape(init)))
    finally:
        checkpointer.close()
    return state.params, progress


def calls_logged(run: str):
    return [r["call"] for r in read_metrics(run)]


def csv_calls(run: str):
    with open(os.path.join(run, rd.METRICS_CSV)) as f:
        rows = f.read().splitlines()
    i = rows[0].split(",").index("call")
    return [int(float(r.split(",")[i])) for r in rows[1:]]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted run of CALLS calls (checkpoints CALLS-2..CALLS kept)."""
    path = str(tmp_path_factory.mktemp("faults") / "straight")
    train_mod.train(tiny_config(), run_dir=path, progress=False, final_eval=False,
                    out=io.StringIO())
    return path


@pytest.fixture
def copy(straight, tmp_path):
    path = str(tmp_path / "run")
    shutil.copytree(straight, path)
    return path


def assert_same_params(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ---------------------------------------------------------------------------------------------
# Kills: SIGTERM saves and stops between calls; SIGKILL loses at most the calls since the last
# checkpoint; either way a resume logs every call once and ends at the uninterrupted params.
# ---------------------------------------------------------------------------------------------
SLOW_RUN = textwrap.dedent("""
    import sys, time
    from npigym.experiments import train
    build = train.build
    def slow_build(config):
        env, network, trainer, init, call = build(config)
        def slow_call(state):
            out = call(state)
            time.sleep(0.15)
            return out
        return env, network, trainer, init, slow_call
    train.build = slow_build
    from npigym import cli
    sys.exit(cli.main(sys.argv[1:]))
""")


def start_run(path: str, calls: int):
    argv = ["train", "--env", "Addition-v0", "--run-dir", path, "--quiet", "--no-eval", *TINY,
            f"total_env_steps={calls * PER_CALL}"]
    return subprocess.Popen([sys.executable, "-c", SLOW_RUN, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_records(path: str, n: int, proc, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(calls_logged(path)) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"no {n} records in {timeout} s")


@pytest.mark.slow  # a subprocess each: imports and compiles (~15-50 s)
@pytest.mark.parametrize("sig, after, extra_delay", [
    (signal.SIGTERM, 3, 0.0),
    (signal.SIGKILL, 4, 0.07),  # mid-call: during the call, the write or the save
])
def test_kill__resume_logs_each_call_once_and_matches_the_uninterrupted_run(
        straight, tmp_path, sig, after, extra_delay):
    path = str(tmp_path / "killed")
    proc = start_run(path, calls=1000)
    wait_for_records(path, after, proc)
    time.sleep(extra_delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "stopped by SIGTERM" in err and "--resume" in err and "Traceback" not in err
        saved = rd.Checkpointer(path)
        last = saved.latest_step()
        saved.close()
        assert last == max(calls_logged(path))  # the final save covers every logged call
    else:
        assert proc.returncode == -signal.SIGKILL
    # The kill lands a call or so after `after` calls were seen, far before CALLS.
    assert max(calls_logged(path)) < CALLS, "the run finished before the kill landed"
    train_mod.train(tiny_config(), run_dir=path, resume=True, progress=False,
                    final_eval=False, out=io.StringIO())
    assert calls_logged(path) == list(range(1, CALLS + 1))
    assert csv_calls(path) == list(range(1, CALLS + 1))
    resumed, progress = final_params(path)
    expected, _ = final_params(straight)
    assert progress["checkpoint"] == CALLS
    assert_same_params(resumed, expected)


# ---------------------------------------------------------------------------------------------
# Damaged files.
# ---------------------------------------------------------------------------------------------
def data_files(run: str, step: int):
    folder = os.path.join(run, rd.CHECKPOINTS, str(step))
    return [os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs]


def flip_bytes(path: str, n: int = 64, seed: int = 0) -> None:
    with open(path, "rb") as f:
        data = bytearray(f.read())
    rng = np.random.default_rng(seed)
    for i in rng.integers(0, len(data), size=n):
        data[i] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))


def truncate(path: str) -> None:
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [flip_bytes, truncate])
def test_damaged_latest_checkpoint__falls_back_to_the_newest_intact_one(copy, damage, capsys):
    for path in data_files(copy, CALLS):  # every file of the newest step
        damage(path)
    params, progress = final_params(copy)
    assert progress["checkpoint"] == CALLS - 1
    assert "warning: checkpoint 8" in capsys.readouterr().err
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(params))


def test_damaged_data_bytes__are_caught_by_the_digest(copy, capsys):
    # Flip bytes of the array chunks only: orbax may read them without error, the digest not.
    for step in (CALLS - 2, CALLS - 1, CALLS):
        for path in data_files(copy, step):
            if f"{os.sep}d{os.sep}" in path:
                flip_bytes(path, n=8, seed=step)
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--resume", copy, "--quiet", "--no-eval"])
    message = str(e.value)
    assert message.startswith("npigym train: no intact checkpoint") and "\n" not in message
    assert "checkpoint 8:" in message and "checkpoint 6:" in message


@pytest.mark.parametrize("what", ["missing", "empty"])
def test_no_checkpoint__is_one_clean_line_from_eval_and_resume(copy, what):
    shutil.rmtree(os.path.join(copy, rd.CHECKPOINTS))
    if what == "empty":
        os.makedirs(os.path.join(copy, rd.CHECKPOINTS))
    for argv in (["eval", copy, "--lengths", "2", "--episodes", "2"],
                 ["train", "--resume", copy, "--quiet", "--no-eval"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert "no checkpoint in" in str(e.value) and "\n" not in str(e.value)


def test_non_finite_checkpoint__is_refused_and_skipped(copy, capsys):
    config = read_config(os.path.join(copy, rd.CONFIG))
    _, _, _, init, _ = train_mod.build(config)
    checkpointer = rd.Checkpointer(copy, max_to_keep=4)
    state, _ = checkpointer.restore(rd.abstract(jax.eval_shape(init)))
    bad = state._replace(params=jax.tree.map(lambda x: x * np.nan, state.params))
    checkpointer.save(CALLS + 1, bad, {"calls": CALLS + 1})  # a valid digest of NaN params
    checkpointer.close()
    _, progress = final_params(copy)
    assert progress["checkpoint"] == CALLS
    assert "non-finite values in" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"\x00\xff garbage {{{", b"[1, 2]", b"env: 3\n"])
def test_garbage_config__is_one_clean_line(copy, content):
    with open(os.path.join(copy, rd.CONFIG), "wb") as f:
        f.write(content)
    for argv in (["eval", copy, "--lengths", "2", "--episodes", "2"],
                 ["train", "--resume", copy, "--quiet", "--no-eval"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert isinstance(e.value.code, str) and "\n" not in e.value.code, e.value.code


@pytest.mark.parametrize("content", [b"", b"{\"checkpoint\": 3, \"calls\"", b"\xff\xfe",
                                     b"{\"checkpoint\": 999, \"calls\": 999}"])
def test_damaged_progress_json__does_not_change_where_a_resume_starts(copy, content):
    with open(os.path.join(copy, rd.PROGRESS), "wb") as f:
        f.write(content)
    config = tiny_config(CALLS + 1)
    train_mod.train(config, run_dir=copy, resume=True, progress=False, final_eval=False,
                    out=io.StringIO())
    assert calls_logged(copy) == list(range(1, CALLS + 2))
    with open(os.path.join(copy, rd.PROGRESS)) as f:
        assert json.load(f)["calls"] == CALLS + 1


def test_torn_and_extra_metric_lines__are_dropped_on_resume(copy):
    jsonl = os.path.join(copy, rd.METRICS_JSONL)
    with open(jsonl, "a") as f:  # records logged after the checkpoint, then a torn line
        f.write(json.dumps({"call": CALLS + 1, "env_steps": 0.0}) + "\n")
        f.write('{"call": 10, "env_ste')
    with open(os.path.join(copy, rd.METRICS_CSV), "a") as f:
        f.write("9,1.0\n10,")
    assert calls_logged(copy)[-1] == CALLS + 1  # a torn line does not break reading
    train_mod.train(tiny_config(CALLS + 2), run_dir=copy, resume=True, progress=False,
                    final_eval=False, out=io.StringIO())
    assert calls_logged(copy) == list(range(1, CALLS + 3))
    assert csv_calls(copy) == list(range(1, CALLS + 3))


# ---------------------------------------------------------------------------------------------
# Non-finite training.
# ---------------------------------------------------------------------------------------------
def test_non_finite_loss__stops_without_saving_or_logging_the_bad_call(tmp_path, monkeypatch):
    config = tiny_config()
    env, network, trainer, init, call = train_mod.build(config)
    count = {"n": 0}

    def poisoned(state):
        state, metrics = call(state)
        count["n"] += 1
        if count["n"] == 3:
            metrics = dict(metrics, loss=metrics["loss"].at[0, 1].set(np.nan))
        return state, metrics

    monkeypatch.setattr(train_mod, "build", lambda c: (env, network, trainer, init, poisoned))
    path = str(tmp_path / "nan")
    with pytest.raises(train_mod.NonFiniteError, match=r"non-finite loss \(nan\) at call 3 "
                                                       r"\(seed 0, update 2 of 2\)"):
        train_mod.train(config, run_dir=path, progress=False, final_eval=False,
                        out=io.StringIO())
    assert calls_logged(path) == [1, 2]
    checkpointer = rd.Checkpointer(path)
    assert checkpointer.latest_step() == 2
    checkpointer.close()


def test_first_non_finite__names_the_quantity_and_ignores_counts():
    metrics = {"episodes": np.zeros((1, 2)), "loss": np.ones((1, 2)),
               "grad_norm": np.array([[1.0, np.inf]])}
    assert train_mod.first_non_finite(metrics) == ("grad_norm", np.inf, (0, 1))
    assert train_mod.first_non_finite({"loss": np.ones((2, 2))}) is None


def test_npi_non_finite_loss__stops_keeping_the_last_good_parameters(tmp_path, monkeypatch):
    """The NPI trainer's guard: parameters that go NaN after update 3 make update 4's loss NaN;
    training stops with one clean line naming the loss and the updates, logs nothing past the
    last good record and saves that record's (finite) parameters in the run directory."""
    import dataclasses

    import jax.numpy as jnp

    import npigym
    from npigym import traces
    from npigym.agents.npi import training as npi_training
    from npigym.experiments import npi_runs
    from tests.agents.npi_helpers import TINY

    trace_path = str(tmp_path / "add.npz")
    traces.save(traces.collect(npigym.make("Addition-v0", max_digits=2), jax.random.PRNGKey(0),
                               4), trace_path)
    real_make_update = npi_training.make_update

    def make_poisoned_update(*args, **kwargs):
        update, calls = real_make_update(*args, **kwargs), {"n": 0}

        def poisoned(state, *rest):
            state, metrics = update(state, *rest)
            calls["n"] += 1
            if calls["n"] == 3:  # as if a bad batch blew the weights up
                state = state._replace(params=jax.tree.map(lambda x: x * jnp.nan,
                                                           state.params))
            return state, metrics

        return poisoned

    monkeypatch.setattr(npi_training, "make_update", make_poisoned_update)
    run = str(tmp_path / "run")
    model_keys = [f"{k}={list(v) if isinstance(v, tuple) else v}"
                  for k, v in dataclasses.asdict(TINY).items()]
    with pytest.raises(SystemExit) as e:
        npi_runs.main(["npi-train", "--traces", trace_path, "--run-dir", run, "--no-eval",
                       "num_updates=8", "log_every=2", "batch_rows=4", *model_keys])
    message = str(e.value)
    assert message.startswith("npigym npi-train: non-finite ") and "\n" not in message
    assert "loss" in message and "in updates 3..4" in message, message
    assert "last good: update 2" in message and "saved update 2's parameters" in message
    with open(os.path.join(run, "metrics.jsonl")) as f:
        assert [json.loads(line)["update"] for line in f] == [2]
    loaded = npi_runs.load_run(run)
    assert loaded.meta["training"]["updates"] == 2 and "non-finite" in \
        loaded.meta["training"]["stopped"]
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(loaded.params))


# ---------------------------------------------------------------------------------------------
# Command-line odds.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["addition-macro", "snake"])
def test_env_flag_disagreeing_with_the_preset__is_an_error_naming_both(preset):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--env", "Sorting-v0", "--config", preset, "--quiet"])
    assert "--env Sorting-v0 disagrees with --config " + preset in str(e.value)


def test_list_into_a_closed_pipe__exits_quietly():
    proc = subprocess.run(f"{sys.executable} -m npigym.cli list -v | head -1", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# Trace files: every field's range; a random or text file says what it is not.
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trace_arrays(tmp_path_factory):
    import npigym
    from npigym import traces

    env = npigym.make("Addition-v0", max_digits=2)
    path = str(tmp_path_factory.mktemp("traces") / "good.npz")
    traces.save(traces.collect(env, jax.random.PRNGKey(0), 2), path)
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("field, value, message", [
    ("row/next_args", 99, "argument values outside"),
    ("row/next_args", -1, "argument values outside"),
    ("row/args", 99, "argument values outside"),
    ("row/next_program", 50, "program ids outside"),
    ("row/program", -3, "program ids outside"),
    ("row/depth", -1, "depths outside"),
    ("row/episode_index", 5, "episode_index"),
])
def test_bad_trace_field__is_named(trace_arrays, tmp_path, field, value, message):
    from npigym import traces

    arrays = dict(trace_arrays)
    a = arrays[field].copy()
    a.flat[1] = value
    arrays[field] = a
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(traces.TraceFileError, match=message):
        traces.load(str(path))


@pytest.mark.parametrize("content", [b"hello, I am a text file\n", bytes(range(256)) * 4])
def test_random_or_text_trace_file__is_not_blamed_on_pickles(tmp_path, content):
    from npigym import traces

    path = tmp_path / "t.npz"
    path.write_bytes(content)
    with pytest.raises(traces.TraceFileError) as e:
        traces.load(str(path))
    assert "not a zip archive" in str(e.value) and "pickle" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# Odd actions in the JAX step: out-of-range or non-integer actions are invalid no-ops.
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def addition():
    import npigym

    env = npigym.make("Addition-v0", max_digits=2)
    state, _ = env.reset(jax.random.PRNGKey(0))
    return env, state


@pytest.mark.parametrize("action", [
    np.array([2**40, 0, 0, 0], np.int64),
    np.array([0, 2**33, 0, 0], np.uint64),
    np.array([-(2**40), 0, 0, 0], np.int64),
    np.array([np.nan, 0, 0, 0], np.float32),
    np.array([np.inf, 0, 0, 0]),
    np.array([0.5, 0, 0, 0]),
    np.array([0, 0.25, 0, 0], np.float32),
])
def test_odd_action__is_an_invalid_no_op(addition, action):
    env, state = addition
    new, ts = env.step(state, action)
    assert bool(ts.extras["invalid_action"]) and not bool(ts.last())
    for a, b in zip(jax.tree.leaves(new.task), jax.tree.leaves(state.task)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if action.dtype.kind == "f":  # traced: decided inside the jitted step
        _, ts = jax.jit(env.step)(state, jax.numpy.asarray(action))
        assert bool(ts.extras["invalid_action"])


@pytest.mark.parametrize("action", [np.zeros(4, np.int64), np.zeros(4, np.float32), [0, 0, 0, 0],
                                    np.zeros(4, np.uint8)])
def test_whole_number_action__of_any_dtype_acts_as_its_int32_value(addition, action):
    env, state = addition
    _, ts = env.step(state, action)
    assert not bool(ts.extras["invalid_action"]) and bool(ts.last())  # 0 is RETURN at the root


# ---------------------------------------------------------------------------------------------
# Size knobs bounded where int32 ends.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_digits", [10**9, 77_000_000, 10_000_001])
def test_absurd_addition_size__is_rejected_with_the_bound(max_digits):
    import npigym
    from npigym.envs.addition.generator import MAX_DIGITS

    with pytest.raises(ValueError, match=f"max_digits must be at most {MAX_DIGITS:,}"):
        npigym.make("Addition-v0", max_digits=max_digits)
    assert npigym.make("Addition-v0", max_digits=MAX_DIGITS) is not None  # the bound is allowed
