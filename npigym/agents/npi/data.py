"""Training data for NPI from expert traces: per-frame call sequences, packed into blocks.

NPI trains each program on the sequence of calls to its *immediate* subprograms (Reed &
de Freitas 2016, section 3.3), so all programs train in parallel. A trace (``npigym.traces``)
has one row per decision of the whole call tree; the rows of one frame are the rows at the
frame's depth between its entry (the depth went up, or the episode started) and its RETURN:

    depth  0    1       1      2    2    2    1      0      ...
    call   ADD1 WRITE   CARRY  MOVE WRITE MOVE RETURN LSHIFT
           ^ADD ^ADD1 ........ ^CARRY ..........        ^ADD again

**NPI's end bit and the machine's RETURN.** NPI has no RETURN decision: the end probability
``r_t`` emitted with a call means "this call is my last", and the interpreter returns after it
(:mod:`npigym.agents.npi.interpreter`). A frame's call sequence is therefore its rows without
the final RETURN row, the last call labelled ``end = 1``. Two cases keep a RETURN decision,
which the model predicts as memory row 0 (keras_npi's "NOP with r = 1", AlphaNPI's STOP):

- a frame that calls nothing (COMPSWAP when the pair is in order, HGOTO at the target
  azimuth): its only decision is RETURN (the paper's footnote 1 rules such frames out);
- ``end_mode="return"`` programs, which end with an explicit RETURN decision taken on the
  observation after the last call. This is for loops whose exit cannot be seen when the last
  call is made: ADD's last LSHIFT looks like any other (only the column it moves to is empty),
  and so do RESET's last LSHIFT and BUBBLESORT's last ``PTR 3 RIGHT``; with the end bit on
  those calls the LSTM must count iterations, and counting learned on short traces does not
  carry over to long ones (the paper's reading of its sorting failures beyond length 60).

A program that ends with an explicit RETURN ends only that way: its end bit is neither trained
(``Targets.end_mask``) nor read by the interpreter. ``end_mode="auto"`` (the default) finds
those programs in the traces: a program ends with an
explicit RETURN when two of its calls look the same to the model (same local view, same
frame arguments, same call) but one was the frame's last and the other not, i.e. when its end
bit is not a function of what the model sees at the call. ``"call"`` is NPI's end bit for every
program (the paper's setting); ``"return"`` gives every frame a RETURN decision.

**Packing.** Frames of one program are packed end to end into rows of a fixed length ``T``
(at least the longest frame), the LSTM state zeroed at each frame's first token (``first``):
no padding per frame, static shapes, and a row belongs to one program, so sampling rows by
program (uniform, or NPI's adaptive curriculum) is sampling frames by program.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from npigym.agents.npi.model import ProgramTable, TaskLayout, Tokens, local_dict
from npigym.envs.machine.library import NUM_ARGS, RETURN_ID
from npigym.traces import Traces

END_MODES = ("auto", "call", "return")


class TraceInputError(ValueError):
    """Traces that cannot train this model: empty, of another env or size, failed episodes."""


class Targets(NamedTuple):
    """What the model should predict at each token, leading (B, T) in a packed block.

    Attributes:
        program: memory row of the next call (RETURN where the frame returns).
        args: (..., 3) its arguments.
        arg_mask: (..., 3) bool, the slots the next program takes (only those are trained).
        end: float 0/1, NPI's end bit.
        end_mask: bool, the end bit is trained here (frames of programs that end with NPI's
            end bit, not with an explicit RETURN).
        valid: bool, a real token (not packing slack).
    """

    program: Any
    args: Any
    arg_mask: Any
    end: Any
    end_mask: Any
    valid: Any


class Packed(NamedTuple):
    """A task's training set: packed rows of frames (numpy, then device arrays).

    Attributes:
        tokens: model inputs, leading (R, T).
        targets: targets, leading (R, T).
        row_program: (R,) memory row of the program whose frames fill each row.
    """

    tokens: Tokens
    targets: Targets
    row_program: Any


class TaskData(NamedTuple):
    """One task's frames, token by token (numpy; a frame's tokens are contiguous).

    Attributes:
        task: the task's name.
        local, args, program, next_program, next_args, end: per token (memory rows for
            programs).
        end_used: per token, its frame's program ends with NPI's end bit (not an explicit
            RETURN).
        frame: per token, the frame it belongs to (0 .. num_frames - 1, in order).
        end_modes: ``{program name: "call" | "return"}`` as used for these frames.
        num_episodes: episodes the frames came from.
    """

    task: str
    local: Dict[str, np.ndarray]
    args: np.ndarray
    program: np.ndarray
    next_program: np.ndarray
    next_args: np.ndarray
    end: np.ndarray
    end_used: np.ndarray
    frame: np.ndarray
    end_modes: Dict[str, str]
    num_episodes: int

    @property
    def num_tokens(self) -> int:
        return int(self.frame.shape[0])

    @property
    def frame_lengths(self) -> np.ndarray:
        return np.bincount(self.frame)


# ----------------------------------------------------------------------------------------------
# Checks.
# ----------------------------------------------------------------------------------------------
def check_traces(traces: Traces, layout: TaskLayout, source: str = "traces") -> None:
    """Check ``traces`` can train ``layout``'s task.

    Raises:
        TraceInputError: naming ``source`` and what is wrong (no episodes, another env's
            programs, a local view of another shape or alphabet, episodes the expert did not
            solve).
    """
    env = traces.metadata.get("env_id") or traces.metadata.get("env", "an unknown env")
    if traces.num_episodes == 0 or traces.num_rows == 0:
        raise TraceInputError(f"{source}: no episodes; collect some with `npigym traces ENV -n N`")
    programs = tuple(traces.metadata.get("programs", ()))
    if programs != layout.programs:
        raise TraceInputError(
            f"{source} was recorded on {env} whose programs are {list(programs)}, but the "
            f"{layout.name} task's are {list(layout.programs)}: traces of another env?")
    if "local" not in traces.observation:
        raise TraceInputError(f"{source}: the observations have no local view")
    local = local_dict(traces.observation["local"])
    for leaf in layout.local:
        if leaf.path not in local:
            raise TraceInputError(f"{source}: local view has no {leaf.path!r} (it has "
                                  f"{sorted(local)}): traces of another env?")
        x = local[leaf.path]
        if tuple(x.shape[1:]) != leaf.shape:
            raise TraceInputError(
                f"{source}: local view {leaf.path or 'array'} has shape {tuple(x.shape[1:])} "
                f"but the model's {layout.name} encoder reads {leaf.shape} (another image "
                "size or env configuration?)")
        if leaf.kind == "categorical" and x.size:
            high = np.asarray(leaf.num_values).reshape(leaf.shape)
            if np.any(x < 0) or np.any(x >= high):
                raise TraceInputError(
                    f"{source}: local view values outside the model's one-hot range "
                    f"{leaf.num_values} (e.g. Sorting with a larger max_value?)")
    if not np.all(traces.success):
        bad = int(np.sum(~traces.success))
        raise TraceInputError(f"{source}: {bad} of {traces.num_episodes} episodes did not end "
                              "with the task solved; NPI trains on complete expert traces")


# ----------------------------------------------------------------------------------------------
# Frames.
# ----------------------------------------------------------------------------------------------
def frame_index(depth: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The frame of each trace row, frames numbered by their first row.

    A frame starts where an episode starts or the depth goes up (a call pushed it); every
    other row belongs to the latest frame started at its depth.
    """
    n = depth.shape[0]
    new = np.zeros(n, bool)
    new[np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)[lengths > 0]] = True
    new[1:] |= depth[1:] > depth[:-1]
    starts = np.flatnonzero(new)
    frame = np.empty(n, np.int64)
    for d in np.unique(depth):
        rows = np.flatnonzero(depth == d)
        ids = np.flatnonzero(depth[starts] == d)
        k = np.searchsorted(starts[ids], rows, side="right") - 1
        if np.any(k < 0):
            raise TraceInputError(f"a row at depth {d} comes before any frame at that depth")
        frame[rows] = ids[k]
    return frame


def _row_keys(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """(n, 2) uint64: a 128-bit hash of each row of the given arrays' bytes."""
    n = arrays[0].shape[0]
    raw = np.concatenate([np.ascontiguousarray(a).reshape(n, -1).view(np.uint8)
                          for a in arrays], axis=1)
    pad = (-raw.shape[1]) % 8
    words = np.pad(raw, ((0, 0), (0, pad))).view(np.uint64)
    rng = np.random.default_rng(0)
    out = np.empty((n, 2), np.uint64)
    with np.errstate(over="ignore"):
        for i in range(2):
            mult = rng.integers(1, 2**63, size=words.shape[1], dtype=np.uint64) | np.uint64(1)
            out[:, i] = (words * mult).sum(axis=1, dtype=np.uint64)
    return out


def detect_end_modes(traces: Traces, frame: Optional[np.ndarray] = None) -> Dict[str, str]:
    """``{program name: "call" | "return"}`` for every frame-owning program in ``traces``.

    ``"return"`` where the end bit is not a function of what the model sees at the call: two
    calls with the same local view, frame arguments, and call (program and arguments), one the
    frame's last and the other not.
    """
    names = traces.metadata["programs"]
    frame = frame_index(traces.depth, traces.lengths) if frame is None else frame
    calls = traces.next_program != RETURN_ID
    local = [v for _, v in sorted(local_dict(traces.observation["local"]).items())]
    keys = _row_keys([*local, traces.args, traces.next_program, traces.next_args])
    modes = {}
    for p in np.unique(traces.program):
        rows = calls & (traces.program == p)
        if not rows.any():
            modes[names[p]] = "call"
            continue
        _, inverse = np.unique(keys[rows], axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        ends = traces.end[rows].astype(np.int64)
        seen_end = np.bincount(inverse, weights=ends) > 0
        seen_not = np.bincount(inverse, weights=1 - ends) > 0
        modes[names[p]] = "return" if np.any(seen_end & seen_not) else "call"
    return modes


def task_frames(traces: Traces, table: ProgramTable, task: str, end_mode: str = "auto",
                end_modes: Optional[Mapping[str, str]] = None) -> TaskData:
    """The per-frame call sequences of ``traces`` (see the module docstring).

    Args:
        traces: expert traces of one of ``task``'s envs (checked with :func:`check_traces`).
        table: the model's program table.
        task: the task the traces belong to.
        end_mode: ``"auto"``, ``"call"`` or ``"return"`` (module docstring).
        end_modes: per-program modes that override ``end_mode`` (e.g. a trained model's).

    Raises:
        TraceInputError: see :func:`check_traces`.
    """
    if end_mode not in END_MODES:
        raise ValueError(f"end_mode must be one of {END_MODES}, not {end_mode!r}")
    layout = table.task(task)
    check_traces(traces, layout)
    frame = frame_index(traces.depth, traces.lengths)
    names = layout.programs
    present = [names[p] for p in np.unique(traces.program)]
    if end_mode == "auto":
        modes = detect_end_modes(traces, frame)
    else:
        modes = {name: end_mode for name in present}
    modes.update({k: v for k, v in (end_modes or {}).items() if k in modes})

    num_frames = int(frame.max()) + 1
    size = np.bincount(frame, minlength=num_frames)
    last_row = np.zeros(num_frames, np.int64)
    np.maximum.at(last_row, frame, np.arange(frame.shape[0]))
    frame_program = np.zeros(num_frames, np.int64)
    frame_program[frame] = traces.program
    returns_explicitly = np.asarray([modes.get(names[p], "call") == "return"
                                     for p in frame_program])
    # Drop a frame's closing RETURN row unless the frame is nothing else or returns explicitly.
    is_return = traces.next_program == RETURN_ID
    drop = np.zeros(frame.shape[0], bool)
    closing = last_row[is_return[last_row] & (size > 1) & ~returns_explicitly]
    drop[closing] = True
    keep = ~drop
    end = np.where(returns_explicitly[frame], is_return, traces.end)[keep]

    # A frame's rows are interleaved with its callees'; gather each frame's rows together, in
    # order, and renumber the frames 0..F-1 (every frame keeps at least one row).
    kept = np.flatnonzero(keep)
    order = np.argsort(frame[kept], kind="stable")
    take = kept[order]
    end = end[order]
    _, kept_frame = np.unique(frame[take], return_inverse=True)
    rows = table.rows(task)
    return TaskData(
        task=task,
        local={k: v[take] for k, v in local_dict(traces.observation["local"]).items()},
        args=traces.args[take],
        program=rows[traces.program[take]],
        next_program=rows[traces.next_program[take]],
        next_args=traces.next_args[take],
        end=end.astype(bool),
        end_used=~returns_explicitly[frame[take]],
        frame=kept_frame.reshape(-1),
        end_modes={k: modes[k] for k in sorted(modes)},
        num_episodes=traces.num_episodes,
    )


def task_frames_many(files: Sequence[Traces], table: ProgramTable, task: str,
                     end_mode: str = "auto", end_modes: Optional[Mapping[str, str]] = None
                     ) -> TaskData:
    """:func:`task_frames` of several trace files of one task, as one :class:`TaskData`.

    With ``end_mode="auto"`` the end modes are decided over all the files first (a program
    ends with an explicit RETURN if it must in any of them), so every file's frames are
    translated the same way: short sorts (lengths 2 and 3) show no two look-alike RESET
    calls, and translated alone they would teach RESET to end with its end bit there and
    with a RETURN decision everywhere else. ``end_modes`` override the detected modes.
    """
    overrides: Dict[str, str] = {}
    if end_mode == "auto":
        for traces in files:
            for name, mode in detect_end_modes(traces).items():
                overrides[name] = "return" if "return" in (mode, overrides.get(name)) else "call"
    overrides.update(end_modes or {})
    return concatenate([task_frames(t, table, task, end_mode, overrides) for t in files])


def concatenate(parts: Sequence[TaskData]) -> TaskData:
    """Frames of one task from several trace files as one :class:`TaskData`."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    offsets = np.cumsum([0] + [int(p.frame.max()) + 1 for p in parts[:-1]])
    modes: Dict[str, str] = {}
    for p in parts:
        for k, v in p.end_modes.items():
            # a program that needs an explicit RETURN in any file needs it everywhere
            modes[k] = "return" if "return" in (v, modes.get(k)) else "call"
    return TaskData(
        task=first.task,
        local={k: np.concatenate([p.local[k] for p in parts]) for k in first.local},
        args=np.concatenate([p.args for p in parts]),
        program=np.concatenate([p.program for p in parts]),
        next_program=np.concatenate([p.next_program for p in parts]),
        next_args=np.concatenate([p.next_args for p in parts]),
        end=np.concatenate([p.end for p in parts]),
        end_used=np.concatenate([p.end_used for p in parts]),
        frame=np.concatenate([p.frame + o for p, o in zip(parts, offsets)]),
        end_modes=modes,
        num_episodes=sum(p.num_episodes for p in parts),
    )


# ----------------------------------------------------------------------------------------------
# Packing.
# ----------------------------------------------------------------------------------------------
def block_length(data: Sequence[TaskData], multiple: int = 8) -> int:
    """The smallest multiple of ``multiple`` that holds the longest frame."""
    longest = max(int(d.frame_lengths.max()) for d in data)
    return int(math.ceil(longest / multiple) * multiple)


def _narrow(x: np.ndarray) -> np.ndarray:
    """Small non-negative integers as int8 (the packed sets live on the device)."""
    if np.issubdtype(x.dtype, np.integer) and (x.size == 0 or (x.min() >= 0 and x.max() < 128)):
        return x.astype(np.int8)
    return x


def pack(data: TaskData, table: ProgramTable, length: int) -> Packed:
    """Pack ``data``'s frames into rows of ``length`` tokens, one program per row (next-fit in
    frame order), each frame's first token flagged to zero the LSTM state."""
    lengths = data.frame_lengths
    if lengths.max() > length:
        raise ValueError(f"a frame of {lengths.max()} calls does not fit in rows of {length}")
    num_frames = lengths.shape[0]
    frame_start = np.cumsum(lengths) - lengths
    frame_program = data.program[frame_start]
    order = np.lexsort((np.arange(num_frames), frame_program))
    row = np.empty(num_frames, np.int64)
    offset = np.empty(num_frames, np.int64)
    r, used, current = -1, length, -1
    for f in order.tolist():  # next-fit is sequential; a loop over frames is fast enough
        n = int(lengths[f])
        if frame_program[f] != current or used + n > length:
            r, used, current = r + 1, 0, frame_program[f]
        row[f], offset[f] = r, used
        used += n
    num_rows = r + 1
    token_row = row[data.frame]
    pos = offset[data.frame] + np.arange(data.num_tokens) - frame_start[data.frame]

    def place(x: np.ndarray, fill: Any = 0) -> np.ndarray:
        out = np.full((num_rows, length, *x.shape[1:]), fill, _narrow(x).dtype)
        out[token_row, pos] = _narrow(x)
        return out

    first = np.zeros(data.num_tokens, bool)
    first[frame_start] = True
    valid = np.ones(data.num_tokens, bool)
    uses = np.arange(NUM_ARGS)[None, :] < table.num_args()[data.next_program][:, None]
    row_program = np.zeros(num_rows, np.int32)
    row_program[row] = frame_program
    # Slack after a row's last frame starts a "frame" too, so it never inherits a state.
    first_block = place(first, True)
    first_block |= ~place(valid, False)
    tokens = Tokens(local={k: place(v) for k, v in data.local.items()},
                    args=place(data.args), program=place(data.program), first=first_block)
    targets = Targets(program=place(data.next_program), args=place(data.next_args),
                      arg_mask=place(uses, False), end=place(data.end.astype(np.float32)),
                      end_mask=place(data.end_used, False), valid=place(valid, False))
    return Packed(tokens, targets, row_program)


def describe(data: TaskData, table: ProgramTable) -> List[str]:
    """Lines summarising a task's frames: per program, frames, tokens, longest, end mode."""
    lengths = data.frame_lengths
    frame_start = np.cumsum(lengths) - lengths
    frame_program = data.program[frame_start]
    lines = []
    for row in np.unique(frame_program):
        sel = frame_program == row
        name = table.names[row]
        lines.append(f"{name:<11} frames {int(sel.sum()):>8,}  tokens {int(lengths[sel].sum()):>9,}"
                     f"  longest {int(lengths[sel].max()):>4}  end {data.end_modes.get(name)}")
    return lines


def program_rows(data: Mapping[str, Packed]) -> Dict[str, Tuple[int, ...]]:
    """``{task: memory rows of the programs that have frames}``."""
    return {task: tuple(int(p) for p in np.unique(np.asarray(d.row_program)))
            for task, d in data.items()}
