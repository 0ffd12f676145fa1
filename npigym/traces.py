"""Expert execution traces, NPI style, collected with ``vmap`` and saved as ``.npz``.

A trace has one row per agent decision (one ``env.step``): what the agent saw, the frame it was
executing, the call it made, and NPI's end flag. The NPI model learns
``(observation, program, args) -> (next_program, next_args, end)`` from these rows.

```python
import jax, npigym
from npigym import traces

env = npigym.make("Addition-v0", max_digits=20)
data = traces.collect(env, jax.random.PRNGKey(0), num_episodes=32)
traces.save(data, "traces.npz")
data = traces.load("traces.npz")
data.episode(0)["next_program"]
```
Command line: ``npigym traces Addition-v0 -n 1000 -o traces.npz``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from typing import Any, Dict, Iterator, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from npigym.envs.machine.env import ProgramEnv
from npigym.envs.machine.library import RETURN_ID, ProgramLibrary

FORMAT_VERSION = 1
# Per-row fields besides the observation, with their dtype and trailing shape.
ROW_FIELDS = {
    "program": (np.int32, ()),  # the frame being executed
    "args": (np.int32, (3,)),  # its arguments
    "next_program": (np.int32, ()),  # the call it made (the action)
    "next_args": (np.int32, (3,)),
    "end": (np.bool_, ()),  # NPI's r: this call is the frame's last (its next decision is RETURN)
    "depth": (np.int32, ()),  # the frame's position on the call stack
    "episode_index": (np.int32, ()),  # which episode the row belongs to
}


class TraceFileError(ValueError):
    """A trace file is missing, malformed or of another format version."""


@dataclasses.dataclass
class Traces:
    """Expert traces of many episodes, rows concatenated (a ragged batch).

    Attributes:
        observation: nested dict of arrays with a leading row axis, the fields of the env's
            ``Observation`` (``program``, ``args``, ``depth``, ``action_mask``, ``local``, and
            ``full`` when the env was made with ``observation="full"``).
        program, args, next_program, next_args, end, depth, episode_index: per-row arrays (see
            ``ROW_FIELDS``).
        lengths: (num_episodes,) rows per episode; rows of episode ``i`` start at
            ``offsets[i]``.
        success: (num_episodes,) whether the expert's episode ended with the root's
            postcondition holding.
        metadata: env id, kwargs and library program names, for the trainer to rebuild the env.
    """

    observation: Dict[str, Any]
    program: np.ndarray
    args: np.ndarray
    next_program: np.ndarray
    next_args: np.ndarray
    end: np.ndarray
    depth: np.ndarray
    episode_index: np.ndarray
    lengths: np.ndarray
    success: np.ndarray
    metadata: Dict[str, Any]

    @property
    def num_episodes(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def num_rows(self) -> int:
        return int(self.program.shape[0])

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def episode_rows(self, i: int) -> slice:
        """The rows of episode ``i`` in the flat arrays."""
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range [0, {self.num_episodes})")
        start = int(self.offsets[i])
        return slice(start, start + int(self.lengths[i]))

    def episode(self, i: int) -> Dict[str, Any]:
        """The rows of episode ``i`` as a dict (observation nested)."""
        rows = self.episode_rows(i)
        out: Dict[str, Any] = {k: getattr(self, k)[rows] for k in ROW_FIELDS}
        out["observation"] = jax.tree.map(lambda x: x[rows], self.observation)
        return out

    def episodes(self) -> Iterator[Dict[str, Any]]:
        """Every episode, as :meth:`episode` gives it."""
        for i in range(self.num_episodes):
            yield self.episode(i)

    def format_episode(self, i: int, library: Optional[ProgramLibrary] = None) -> str:
        """Episode ``i`` as an indented NPI trace; ``<end>`` marks NPI's end flag.

        With the env's ``library`` calls are shown with argument names (``WRITE(OUT, 1)``).
        """
        names = self.metadata.get("programs", [])
        lines = []
        e = self.episode(i)
        for row in range(len(e["program"])):
            p, args = int(e["next_program"][row]), e["next_args"][row]
            if library is not None:
                call = library.format_call(p, args)
            else:
                call = (names[p] if 0 <= p < len(names) else str(p)) + (
                    "" if p == RETURN_ID else str(tuple(int(a) for a in args)))
            end = "  <end>" if e["end"][row] and p != RETURN_ID else ""
            lines.append("  " * int(e["depth"][row]) + call + end)
        return "\n".join(lines)


def collect(env: ProgramEnv, key: jax.Array, num_episodes: int, *, batch_size: int = 256,
            max_steps: Optional[int] = None) -> Traces:
    """Run the expert on ``num_episodes`` fresh instances and record every decision.

    Episodes run in batches of ``batch_size`` (vmapped, one ``lax.while_loop`` per batch that
    stops when every episode has ended), so memory is ``batch_size x max_steps`` rows.

    Args:
        env: a program-machine env whose posing has an expert (not a flat/inlined one).
        key: random key; instance ``i`` comes from ``jax.random.split(key, num_episodes)[i]``.
        num_episodes: how many episodes.
        batch_size: episodes per vmapped batch.
        max_steps: rows reserved per episode; defaults to the largest step limit of the batch.

    Raises:
        ValueError: for a posing without an expert or nonsense sizes.
    """
    if not isinstance(env, ProgramEnv):
        raise TypeError(f"traces need a program-machine env, not {type(env).__name__}")
    if env.library.has_inline:
        raise ValueError("this posing inlines programs, so it has no step-by-step expert; "
                         "collect traces with modes='hierarchical' (or 'macro')")
    if int(num_episodes) < 1 or int(batch_size) < 1:
        raise ValueError(f"num_episodes and batch_size must be positive, got {num_episodes}, "
                         f"{batch_size}")
    keys = jax.random.split(key, int(num_episodes))
    parts = []
    for start in range(0, int(num_episodes), int(batch_size)):
        parts.append(_collect_batch(env, keys[start:start + int(batch_size)], max_steps))
    return _concatenate(env, parts)


def _collect_batch(env: ProgramEnv, keys: jax.Array, max_steps: Optional[int]) -> Dict[str, Any]:
    states, timesteps = jax.jit(jax.vmap(env.reset))(keys)
    if max_steps is None:
        max_steps = int(jnp.max(states.step_limit))
    rows = _run_expert(env, states, timesteps, int(max_steps))
    return jax.tree.map(np.asarray, rows)


def _run_expert_fn(env: ProgramEnv, max_steps: int):
    def record(state, timestep):
        action = env.expert_action(state)
        obs = timestep.observation
        row = {"observation": obs, "next_program": action[0], "next_args": action[1:]}
        return action, row

    def run(states, timesteps):
        batch = states.step_count.shape[0]
        _, example = jax.vmap(record)(states, timesteps)
        buffers = jax.tree.map(lambda x: jnp.zeros((max_steps, *x.shape), x.dtype), example)

        def cond(carry):
            t, _, _, done, _ = carry
            return (t < max_steps) & ~jnp.all(done)

        def body(carry):
            t, s, ts, done, buf = carry
            action, row = jax.vmap(record)(s, ts)
            buf = jax.tree.map(lambda b, x: b.at[t].set(x), buf, row)
            s2, ts2 = jax.vmap(env.step)(s, action)
            # Finished episodes stay frozen on their last timestep while others run on.
            s = jax.tree.map(lambda a, b: jnp.where(_expand(done, a), a, b), s, s2)
            ts = jax.tree.map(lambda a, b: jnp.where(_expand(done, a), a, b), ts, ts2)
            return t + 1, s, ts, done | ts2.last(), buf

        init = (jnp.zeros((), jnp.int32), states, timesteps, jnp.zeros((batch,), bool), buffers)
        steps, states, timesteps, _, buffers = jax.lax.while_loop(cond, body, init)
        return steps, states, timesteps, buffers

    return jax.jit(run)


def _expand(mask: jax.Array, like: jax.Array) -> jax.Array:
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def _run_expert(env: ProgramEnv, states, timesteps, max_steps: int) -> Dict[str, Any]:
    run = _run_expert_fn(env, max_steps)
    steps, final_states, final_timesteps, buffers = run(states, timesteps)
    # Rows are time-major (max_steps, batch, ...): make them batch-major.
    buffers = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), buffers)
    return {"rows": buffers, "steps": steps, "lengths": final_states.step_count,
            "last": final_timesteps.last(), "success": final_timesteps.extras["success"]}


def end_flags(depth: np.ndarray, next_program: np.ndarray) -> np.ndarray:
    """NPI's end flag of each decision of one episode: the frame's next decision is RETURN.

    Scanning backwards, the next decision of the frame that made row ``t`` is the nearest later
    row at the same depth (the rows between are the callee's, deeper). RETURN rows are their
    frame's last by definition.
    """
    is_return = next_program == RETURN_ID
    ends = np.zeros(depth.shape, bool)
    last_at_depth: Dict[int, bool] = {}
    for t in range(len(depth) - 1, -1, -1):
        d = int(depth[t])
        ends[t] = bool(is_return[t]) or last_at_depth.get(d, False)
        last_at_depth[d] = bool(is_return[t])
        for deeper in [k for k in last_at_depth if k > d]:
            del last_at_depth[deeper]
    return ends


def _concatenate(env: ProgramEnv, parts) -> Traces:
    obs_rows, fields = [], {k: [] for k in ROW_FIELDS}
    lengths, success = [], []
    episode = 0
    for part in parts:
        rows = part["rows"]
        for b in range(part["lengths"].shape[0]):
            n = int(part["lengths"][b])
            if not part["last"][b]:
                raise RuntimeError(f"expert episode {episode} did not end within "
                                   f"{rows['next_program'].shape[1]} steps (max_steps too small?)")
            obs = jax.tree.map(lambda x, b=b, n=n: x[b, :n], rows["observation"])
            obs_rows.append(obs)
            fields["program"].append(obs.program)
            fields["args"].append(obs.args)
            fields["depth"].append(obs.depth)
            fields["next_program"].append(rows["next_program"][b, :n])
            fields["next_args"].append(rows["next_args"][b, :n])
            fields["end"].append(end_flags(obs.depth, rows["next_program"][b, :n]))
            fields["episode_index"].append(np.full((n,), episode, np.int32))
            lengths.append(n)
            success.append(bool(part["success"][b]))
            episode += 1
    observation = jax.tree.map(lambda *xs: np.concatenate(xs), *obs_rows)
    return Traces(
        observation=_observation_dict(observation),
        **{k: np.concatenate(v).astype(ROW_FIELDS[k][0]) for k, v in fields.items()},
        lengths=np.asarray(lengths, np.int32),
        success=np.asarray(success, bool),
        metadata=_metadata(env),
    )


def _observation_dict(observation: Any) -> Dict[str, Any]:
    """A NamedTuple observation (possibly nested, ``None`` leaves) as nested dicts."""
    if hasattr(observation, "_asdict"):
        return {k: _observation_dict(v) for k, v in observation._asdict().items()
                if v is not None}
    return np.asarray(observation)


def _metadata(env: ProgramEnv) -> Dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "env_id": getattr(env, "env_id", None),
        "env_kwargs": _jsonable(getattr(env, "env_kwargs", {})),
        "env": repr(env),
        "programs": list(env.library.names),
        "arg_values": int(np.asarray(env.library.arg_valid).shape[-1]),
        "modes": env.library.modes,
    }


def _jsonable(kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    out = {}
    for k, v in kwargs.items():
        try:
            json.dumps(v)
            out[k] = v
        except TypeError:
            out[k] = repr(v)
    return out


def save(traces: Traces, path: str) -> None:
    """Write ``traces`` to ``path`` (``.npz``, compressed)."""
    arrays = {f"row/{k}": getattr(traces, k) for k in ROW_FIELDS}
    for name, value in _flatten(traces.observation, "observation"):
        arrays[name] = value
    arrays["episode/lengths"] = traces.lengths
    arrays["episode/success"] = traces.success
    arrays["metadata"] = np.asarray(json.dumps(traces.metadata))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def load(path: str) -> Traces:
    """Read traces written by :func:`save`.

    Raises:
        TraceFileError: if the file is missing, not an ``.npz`` of traces, of another format
            version, or inconsistent (fields of different lengths, bad dtypes, episode lengths
            that do not add up, out-of-range ids).
    """
    if not os.path.exists(path):
        raise TraceFileError(f"no trace file at {path!r}")
    if not zipfile.is_zipfile(path):  # np.load would blame pickled data and hint at unsafety
        with open(path, "rb") as f:
            head = f.read(16)
        raise TraceFileError(f"{path!r} is not a readable .npz trace file (not a zip archive; "
                             f"it starts with {head!r})")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:  # zipfile/pickle/format errors all mean the same to the user
        raise TraceFileError(f"{path!r} is not a readable .npz trace file ({e})") from e
    missing = [f"row/{k}" for k in ROW_FIELDS if f"row/{k}" not in arrays]
    missing += [k for k in ("episode/lengths", "episode/success", "metadata") if k not in arrays]
    if missing:
        raise TraceFileError(f"{path!r} is not an npigym trace file: missing {missing}")
    try:
        metadata = json.loads(str(arrays["metadata"]))
    except json.JSONDecodeError as e:
        raise TraceFileError(f"{path!r}: metadata is not JSON ({e})") from e
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise TraceFileError(f"{path!r} has trace format version {version}; this npigym reads "
                             f"version {FORMAT_VERSION}")
    rows = {}
    for k, (dtype, shape) in ROW_FIELDS.items():
        a = arrays[f"row/{k}"]
        if a.ndim != 1 + len(shape) or a.shape[1:] != shape or a.dtype != dtype:
            raise TraceFileError(f"{path!r}: row/{k} has shape {a.shape} and dtype {a.dtype}; "
                                 f"expected (rows, *{shape}) of {np.dtype(dtype)}")
        rows[k] = a
    n = {a.shape[0] for a in rows.values()}
    observation = _unflatten({k[len("observation/"):]: v for k, v in arrays.items()
                              if k.startswith("observation/")})
    n |= {leaf.shape[0] for leaf in jax.tree.leaves(observation)}
    if len(n) != 1:
        raise TraceFileError(f"{path!r}: fields have different numbers of rows {sorted(n)}")
    lengths, success = arrays["episode/lengths"], arrays["episode/success"]
    if lengths.ndim != 1 or success.shape != lengths.shape or np.any(lengths < 0) \
            or int(lengths.sum()) != n.pop():
        raise TraceFileError(f"{path!r}: episode lengths do not add up to the number of rows")
    _check_ranges(path, rows, lengths, metadata)
    return Traces(observation=observation, **rows, lengths=lengths.astype(np.int32),
                  success=success.astype(bool), metadata=metadata)


def _check_ranges(path: str, rows: Mapping[str, np.ndarray], lengths: np.ndarray,
                  metadata: Mapping[str, Any]) -> None:
    """Every row field within its range (TraceFileError naming the field, row and value)."""

    def bad(field: str, lo: int, hi: Optional[int], what: str = "values") -> None:
        a = rows[field]
        wrong = (a < lo) | ((a > hi) if hi is not None else False)
        if np.any(wrong):
            i = np.argwhere(wrong)[0]
            bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise TraceFileError(f"{path!r}: {what} outside {bound}: {field}"
                                 f"[{', '.join(map(str, i))}] = {a[tuple(i)]}")

    programs = metadata.get("programs")
    if not isinstance(programs, list) or not programs:
        raise TraceFileError(f"{path!r}: metadata has no program list")
    bad("program", 0, len(programs) - 1, "program ids")
    bad("next_program", 0, len(programs) - 1, "program ids")
    arg_values = metadata.get("arg_values")  # absent in files of older npigyms: >= 0 only
    hi = int(arg_values) - 1 if isinstance(arg_values, int) and arg_values > 0 else None
    bad("args", 0, hi, "argument values")
    bad("next_args", 0, hi, "argument values")
    bad("depth", 0, None, "depths")
    expected = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths.astype(np.int64))
    if not np.array_equal(rows["episode_index"], expected):
        i = int(np.argmax(rows["episode_index"] != expected))
        raise TraceFileError(f"{path!r}: episode_index[{i}] = {rows['episode_index'][i]}; the "
                             f"episode lengths put row {i} in episode {expected[i]}")


def _flatten(tree: Any, prefix: str):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flatten(v, f"{prefix}/{k}")
    else:
        yield prefix, np.asarray(tree)


def _unflatten(flat: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, value in flat.items():
        node = out
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out
