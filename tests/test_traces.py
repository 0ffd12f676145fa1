"""Expert traces: rows, NPI end flags, batching, .npz round trip, malformed files."""

import jax
import numpy as np
import pytest

import npigym
from npigym import traces
from npigym.envs.addition import ProblemGenerator


@pytest.fixture(scope="module")
def fig3b():
    env = npigym.make("Addition-v0", generator=ProblemGenerator([(96, 125)]))
    return env, traces.collect(env, jax.random.PRNGKey(0), 1)


def test_traces__rows_of_96_plus_125(fig3b):
    env, data = fig3b
    assert data.num_episodes == 1 and data.num_rows == 38 and bool(data.success[0])
    e = data.episode(0)
    names = [env.library.names[p] for p in e["next_program"]]
    assert names[:3] == ["ADD1", "WRITE", "CARRY"] and names[-1] == "RETURN"
    np.testing.assert_array_equal(e["depth"][:8], [0, 1, 1, 2, 2, 2, 2, 1])
    np.testing.assert_array_equal(e["program"][:3], [3, 4, 4])  # ADD, ADD1, ADD1
    np.testing.assert_array_equal(e["observation"]["program"], e["program"])
    np.testing.assert_array_equal(e["next_args"][1], [3, 1, 0])  # WRITE(OUT, 1)
    assert data.metadata["env_id"] == "Addition-v0"
    assert data.metadata["programs"][3] == "ADD"


def test_traces__end_flags_mark_each_frames_last_call(fig3b):
    env, data = fig3b
    e = data.episode(0)
    text = data.format_episode(0, env.library).splitlines()
    ended = [line.strip() for line in text if line.endswith("<end>")]
    # CARRY is ADD1's last call in the first two columns; MOVE_PTR(CARRY, RIGHT) ends CARRY;
    # MOVE_PTR(OUT, LEFT) ends each LSHIFT; WRITE(OUT, 2) ends the last ADD1; the last LSHIFT
    # is ADD's last call.
    assert ended[:3] == ["CARRY  <end>", "MOVE_PTR(CARRY, RIGHT)  <end>",
                         "MOVE_PTR(OUT, LEFT)  <end>"]
    assert "WRITE(OUT, 2)  <end>" in ended and ended[-2:] == ["LSHIFT  <end>",
                                                              "MOVE_PTR(OUT, LEFT)  <end>"]
    assert e["end"][e["next_program"] == 0].all()  # RETURN rows end their frame


def test_traces__end_flags_function():
    # root calls P (frame at depth 1: a primitive, RETURN), calls P again (RETURN at once),
    # then RETURNs: the first call is not the root's last; the second is.
    depth = np.array([0, 1, 1, 0, 1, 0])
    program = np.array([5, 2, 0, 5, 0, 0])
    np.testing.assert_array_equal(traces.end_flags(depth, program),
                                  [False, True, True, True, True, True])


def test_traces__batched_collection_and_round_trip(tmp_path):
    env = npigym.make("Addition-v0", max_digits=6, observation="full")
    data = traces.collect(env, jax.random.PRNGKey(3), 10, batch_size=4)
    assert data.num_episodes == 10 and data.success.all()
    assert data.lengths.sum() == data.num_rows
    assert set(data.observation) == {"program", "args", "depth", "action_mask", "local", "full"}
    assert data.observation["full"]["pad"].shape == (data.num_rows, 4, 10)
    path = tmp_path / "t.npz"
    traces.save(data, str(path))
    back = traces.load(str(path))
    for name in traces.ROW_FIELDS:
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))
    np.testing.assert_array_equal(back.observation["full"]["pad"], data.observation["full"]["pad"])
    assert back.metadata == data.metadata
    # the same key gives the same traces, batched differently
    again = traces.collect(env, jax.random.PRNGKey(3), 10, batch_size=10)
    np.testing.assert_array_equal(again.next_program, data.next_program)


def test_traces__flat_posing_has_no_expert():
    with pytest.raises(ValueError, match="hierarchical"):
        traces.collect(npigym.make("Addition-flat-v0"), jax.random.PRNGKey(0), 1)


def test_traces__bad_sizes():
    env = npigym.make("Addition-v0", max_digits=2)
    with pytest.raises(ValueError, match="positive"):
        traces.collect(env, jax.random.PRNGKey(0), 0)


def _write(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_traces__malformed_files_give_clear_errors(tmp_path, fig3b):
    _, data = fig3b
    good = tmp_path / "good.npz"
    traces.save(data, str(good))
    with np.load(good) as f:
        arrays = {k: f[k] for k in f.files}

    with pytest.raises(traces.TraceFileError, match="no trace file"):
        traces.load(str(tmp_path / "missing.npz"))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(traces.TraceFileError, match="not a readable"):
        traces.load(str(junk))
    partial = tmp_path / "partial.npz"
    _write(partial, **{k: v for k, v in arrays.items() if k != "row/end"})
    with pytest.raises(traces.TraceFileError, match="missing"):
        traces.load(str(partial))
    old = tmp_path / "old.npz"
    _write(old, **{**arrays, "metadata": np.asarray('{"format_version": 0}')})
    with pytest.raises(traces.TraceFileError, match="version"):
        traces.load(str(old))
    short = tmp_path / "short.npz"
    _write(short, **{**arrays, "row/depth": arrays["row/depth"][:-1]})
    with pytest.raises(traces.TraceFileError, match="different numbers of rows"):
        traces.load(str(short))
    lengths = tmp_path / "lengths.npz"
    _write(lengths, **{**arrays, "episode/lengths": arrays["episode/lengths"] + 1})
    with pytest.raises(traces.TraceFileError, match="add up"):
        traces.load(str(lengths))
    ids = tmp_path / "ids.npz"
    _write(ids, **{**arrays, "row/next_program": arrays["row/next_program"] + 50})
    with pytest.raises(traces.TraceFileError, match="program ids"):
        traces.load(str(ids))
    dtype = tmp_path / "dtype.npz"
    _write(dtype, **{**arrays, "row/args": arrays["row/args"].astype(np.float32)})
    with pytest.raises(traces.TraceFileError, match="row/args"):
        traces.load(str(dtype))
