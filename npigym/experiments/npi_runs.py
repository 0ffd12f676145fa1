"""NPI runs: train on trace files into a run directory, evaluate by length, play step by step.

The three steps of the original implementations (keras_npi: create data, train, test with a
step-by-step display)::

    npigym traces Addition-v0 --digits 20 -n 640 -o add.npz
    npigym npi-train --traces add.npz --run-dir runs/add num_updates=4000
    npigym npi-eval runs/add --lengths 20,100,1000 --episodes 100
    npigym npi-play runs/add --digits 20

One NPI for several tasks: pass one trace file per task (``--traces add.npz --traces
sort.npz --traces cars.npz``); the program memory is the union of their libraries by name.
A new program on a trained core (NPI section 4.3): ``npigym npi-train --traces max.npz
--base runs/sort --train-programs MAX,RJMP`` freezes everything but those memory rows.

For ``npigym train --agent npi`` / ``npigym eval RUN_DIR`` / ``npigym play RUN_DIR`` the
command line dispatches to :func:`is_npi_run` (is this an NPI run directory?),
:func:`main_train`, :func:`eval_from_command_line` (or :func:`evaluate_run`) and
:func:`play_run`; :func:`main` runs the three subcommands on their own
(``python -m npigym.experiments.npi_runs npi-train ...``).

A run directory (the layout of ``npigym.experiments.run_dir``)::

    config.yaml          the resolved config (``agent: npi``); ``--config`` takes it back
    npi.json             the program table, end modes, the envs and data the run trained on
    metrics.jsonl        one record per ``log_every`` updates (losses, accuracies, wall time)
    checkpoints/<step>/  orbax checkpoint of the parameters
    learning_curves.png  loss and teacher-forced token accuracy against updates
    eval.json, eval.md   success rate per instance size, per env
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import typing
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import jax
import numpy as np
import yaml

from npigym import traces as trace_files
from npigym.agents.npi import data as npi_data
from npigym.agents.npi import interpreter
from npigym.agents.npi import training as npi_training
from npigym.agents.npi.model import (
    NPIConfig,
    NPIModel,
    Params,
    ProgramTable,
    extend_params,
    make_model,
    task_layout,
    trainable_mask,
)
from npigym.experiments import run_dir as rd
from npigym.experiments.config import to_dict

NPI_JSON = "npi.json"
AGENT = "npi"


class RunConfigError(ValueError):
    """A run configuration that makes no sense (unknown key, bad value, missing traces)."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything an NPI run needs.

    Attributes:
        traces: trace files (``npigym traces``), one or more per task.
        agent: always ``"npi"`` (run directories say which agent wrote them).
        base_run: start from this run's parameters (its program table extended by the new
            traces' programs).
        train_programs: train only these programs' memory rows (everything else frozen);
            empty trains everything.
        mask: programs the interpreter chooses among: ``"library"`` (the env's programs, as
            NPI) or ``"callable"`` (only those the current frame may call).
        alpha: NPI's end threshold.
        eval_lengths: instance sizes of the final evaluation (empty: skip it).
        eval_episodes: episodes per size.
        eval_batch: episodes per batched interpreter run.
        model: network sizes.
        train: training settings.
    """

    traces: Tuple[str, ...] = ()
    agent: str = AGENT
    base_run: Optional[str] = None
    train_programs: Tuple[str, ...] = ()
    mask: str = "library"
    alpha: float = interpreter.ALPHA
    eval_lengths: Tuple[int, ...] = ()
    eval_episodes: int = 100
    eval_batch: int = 64
    model: NPIConfig = dataclasses.field(default_factory=NPIConfig)
    train: npi_training.TrainConfig = dataclasses.field(
        default_factory=npi_training.TrainConfig)

    def __post_init__(self) -> None:
        if self.agent != AGENT:
            raise RunConfigError(f"agent must be {AGENT!r} here, not {self.agent!r}")
        if self.mask not in interpreter.MASKS:
            raise RunConfigError(f"mask must be one of {interpreter.MASKS}, not {self.mask!r}")
        if not 0 < self.alpha < 1:
            raise RunConfigError(f"alpha must be in (0, 1), not {self.alpha}")
        if any(n < 1 for n in self.eval_lengths) or self.eval_episodes < 1 \
                or self.eval_batch < 1:
            raise RunConfigError("eval_lengths, eval_episodes and eval_batch must be >= 1")


SECTIONS = {"model": NPIConfig, "train": npi_training.TrainConfig}


def config_to_dict(config: RunConfig) -> Dict[str, Any]:
    return to_dict(config)


def _coerce(value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        if value is None:
            return None
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
        origin = typing.get_origin(tp)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            value = [value]
        inner = typing.get_args(tp)[0]
        return tuple(_coerce(v, inner) for v in value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def config_from_dict(tree: Mapping[str, Any], base: Optional[RunConfig] = None) -> RunConfig:
    """A config from a nested (``{"train": {...}}``) or dotted (``train.learning_rate``)
    mapping over ``base``; unambiguous short keys (``learning_rate``) are resolved.

    Raises:
        RunConfigError: an unknown or ambiguous key, or a bad value.
    """
    base = base or RunConfig()
    top = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    sections = {s: {f.name: getattr(getattr(base, s), f.name)
                    for f in dataclasses.fields(cls)} for s, cls in SECTIONS.items()}
    hints = {s: typing.get_type_hints(cls) for s, cls in SECTIONS.items()}
    hints[""] = typing.get_type_hints(RunConfig)
    flat: List[Tuple[str, Any]] = []
    for k, v in tree.items():
        if k in SECTIONS and isinstance(v, Mapping):
            flat += [(f"{k}.{kk}", vv) for kk, vv in v.items()]
        else:
            flat.append((k, v))
    known = [k for k in top if k not in SECTIONS] + [f"{s}.{f}" for s in sections
                                                      for f in sections[s]]
    for key, value in flat:
        matches = [k for k in known if k == key] or [k for k in known
                                                     if k.split(".")[-1] == key]
        if not matches:
            raise RunConfigError(f"unknown key {key!r}; keys are {', '.join(known)}")
        if len(matches) > 1:
            raise RunConfigError(f"key {key!r} is ambiguous: write one of {matches}")
        section, _, name = matches[0].rpartition(".")
        value = _coerce(value, hints[section][name])
        if section:
            sections[section][name] = value
        else:
            top[name] = value
    try:
        for s, cls in SECTIONS.items():
            top[s] = cls(**sections[s])
        return RunConfig(**top)
    except (TypeError, ValueError) as e:
        raise RunConfigError(str(e)) from None


def parse_overrides(words: Sequence[str]) -> Dict[str, Any]:
    """``["learning_rate=3e-4", "core_sizes=[256,256]"]`` as a mapping (YAML values)."""
    out = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise RunConfigError(f"expected key=value, got {word!r}")
        out[key] = yaml.safe_load(value)
    return out


def save_config(config: RunConfig, path: str) -> None:
    rd.atomic_write(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def read_config(path: str) -> RunConfig:
    """The run config at ``path``; RunConfigError (one line) when it is unreadable."""
    try:
        with open(path) as f:
            tree = yaml.safe_load(f) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunConfigError(f"{path} is not a readable config ({first})") from None
    if not isinstance(tree, Mapping):
        raise RunConfigError(f"{path} must hold a mapping of keys to values")
    return config_from_dict(tree)


# ----------------------------------------------------------------------------------------------
# Envs from trace files.
# ----------------------------------------------------------------------------------------------
def env_spec_of(traces: trace_files.Traces, source: str) -> Dict[str, Any]:
    """``{"env_id", "env_kwargs"}`` to rebuild the env a trace file was recorded on.

    Keyword values that were objects (a generator) are stored as their repr; they are left
    out (the env's defaults stand in; the local view does not depend on them).
    """
    env_id = traces.metadata.get("env_id")
    if not env_id:
        raise npi_data.TraceInputError(f"{source}: the trace file does not say which env it "
                                       "was recorded on (no env_id); record it with "
                                       "`npigym traces ENV ...`")
    kwargs = {k: v for k, v in traces.metadata.get("env_kwargs", {}).items()
              if not (isinstance(v, str) and "(" in v)}
    return {"env_id": env_id, "env_kwargs": kwargs}


def make_env(spec: Mapping[str, Any], size: Optional[int] = None, **overrides: Any) -> Any:
    """The env of ``spec`` with its size knobs set to ``size`` (and no fixed time limit, so the
    default limit scales with the instance)."""
    import npigym

    kwargs = {**spec["env_kwargs"], **overrides}
    if size is not None:
        knobs = getattr(npigym.spec(spec["env_id"]).load(), "size_knobs", ())
        if not knobs:
            raise RunConfigError(f"{spec['env_id']} has no size knobs")
        kwargs.pop("generator", None)
        kwargs.pop("time_limit", None)
        kwargs.update({k: int(size) for k in knobs})
    try:
        return npigym.make(spec["env_id"], **kwargs)
    except (TypeError, ValueError) as e:
        raise RunConfigError(f"{spec['env_id']}: {e}") from None


# ----------------------------------------------------------------------------------------------
# Building a model and its data.
# ----------------------------------------------------------------------------------------------
class LoadedRun(NamedTuple):
    """A trained run: its config, model, parameters and ``npi.json`` metadata."""

    config: RunConfig
    model: NPIModel
    params: Params
    meta: Dict[str, Any]


class Prepared(NamedTuple):
    model: NPIModel
    params: Params
    data: Dict[str, npi_data.Packed]
    trainable: Optional[Params]
    meta: Dict[str, Any]


def prepare(config: RunConfig, out: Any = None) -> Prepared:
    """Load the trace files, build the program table, the model, its initial parameters
    (fresh, or the base run's extended) and the packed training data.

    Raises:
        TraceInputError: unreadable or unsuitable trace files.
        RunConfigError: no trace files, or programs to train that the model lacks.
    """
    if not config.traces:
        raise RunConfigError("no trace files: pass --traces FILE (from `npigym traces`)")
    loaded = []
    for path in config.traces:
        data = trace_files.load(path)  # TraceFileError: a ValueError with a clear message
        spec = env_spec_of(data, path)
        env = make_env(spec)
        layout = task_layout(env)
        npi_data.check_traces(data, layout, path)
        loaded.append((path, data, spec, layout))

    base = load_run(config.base_run) if config.base_run else None
    table = ProgramTable.build([layout for *_, layout in loaded],
                               base=base.model.table if base else None)
    model = make_model(base.config.model if base else config.model, table)
    key = jax.random.PRNGKey(config.train.seed)
    if base is not None:
        params = extend_params(base.params, base.model.table, model, key)
    else:
        params = jax.jit(model.init)(key)
    missing = [p for p in config.train_programs if p not in table.names]
    if missing:
        raise RunConfigError(f"train_programs {missing} are not programs of the model "
                             f"({list(table.names)})")
    trainable = (trainable_mask(params, table, config.train_programs)
                 if config.train_programs else None)

    base_modes = base.meta.get("end_modes", {}) if base else {}
    per_task: Dict[str, List[trace_files.Traces]] = {}
    for _, data, _, layout in loaded:
        per_task.setdefault(layout.name, []).append(data)
    frames = {t: npi_data.task_frames_many(files, table, t, config.train.end_mode,
                                           base_modes.get(t))
              for t, files in per_task.items()}
    packed = {t: npi_data.pack(d, table, npi_data.block_length([d])) for t, d in frames.items()}
    end_modes = {t: {**base_modes.get(t, {}), **d.end_modes} for t, d in frames.items()}
    for t, modes in base_modes.items():
        end_modes.setdefault(t, modes)
    meta = {
        "table": table.to_json(),
        "end_modes": end_modes,
        "envs": {layout.name: spec for _, _, spec, layout in loaded},
        "env_list": [spec for _, _, spec, _ in loaded],
        "data": {t: {"episodes": d.num_episodes, "frames": int(d.frame_lengths.shape[0]),
                     "tokens": d.num_tokens, "rows": int(packed[t].row_program.shape[0]),
                     "block_length": int(packed[t].targets.valid.shape[1]),
                     "programs": npi_data.describe(d, table)}
                 for t, d in frames.items()},
        "base_run": config.base_run,
    }
    if base is not None:
        for t, spec in base.meta.get("envs", {}).items():
            meta["envs"].setdefault(t, spec)
        meta["env_list"] = base.meta.get("env_list", []) + meta["env_list"]
    if out is not None:
        for t, info in meta["data"].items():
            print(f"{t}: {info['episodes']} episodes, {info['frames']:,} frames, "
                  f"{info['tokens']:,} calls in {info['rows']:,} rows of "
                  f"{info['block_length']}", file=out)
            for line in info["programs"]:
                print(f"  {line}", file=out)
    return Prepared(model, params, packed, trainable, meta)


# ----------------------------------------------------------------------------------------------
# Training into a run directory.
# ----------------------------------------------------------------------------------------------
def train_run(config: RunConfig, run_dir: Optional[str] = None, runs_root: str = "runs",
              out: Any = None, final_eval: bool = True) -> str:
    """Train as ``config`` says into ``run_dir`` (default: a new one under ``runs_root``);
    returns the run directory."""
    out = out or sys.stdout
    prepared = prepare(config, out)
    if run_dir is None:
        names = "+".join(sorted(prepared.meta["envs"]))
        run_dir = rd.new_run_dir(runs_root, names, AGENT)
    os.makedirs(run_dir, exist_ok=True)
    save_config(config, os.path.join(run_dir, rd.CONFIG))
    metrics_path = os.path.join(run_dir, rd.METRICS_JSONL)
    open(metrics_path, "w").close()

    def log(record: Dict[str, Any]) -> None:
        with open(metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"update {record['update']:>6}  {record['wall_time']:>7.1f} s  loss "
              f"{record['loss']:.4f}  " + "  ".join(
                  f"{k.split('/')[0]} acc {v:.4f}" for k, v in record.items()
                  if k.endswith("/token_acc")), file=out, flush=True)

    try:
        params, summary = npi_training.train(prepared.model, prepared.params, prepared.data,
                                             config.train, prepared.trainable, log)
    except npi_training.NonFiniteError as e:  # keep the last good parameters, if any
        if e.update:
            save_run(run_dir, config, prepared.meta, e.params,
                     {"updates": e.update, "wall_time": 0.0, "stopped": str(e)})
            e.args = (f"{e}; saved update {e.update}'s parameters in {run_dir}",)
        raise
    save_run(run_dir, config, prepared.meta, params, summary)
    curves = plot_curves(run_dir)
    print(f"trained {summary['updates']:,} updates in {summary['wall_time']:.0f} s; run "
          f"directory {run_dir}" + (f"; curves {curves}" if curves else ""), file=out)
    if final_eval and config.eval_lengths:
        print(evaluate_run(run_dir, lengths=list(config.eval_lengths),
                           episodes=config.eval_episodes, out=out), file=out)
    return run_dir


def save_run(run_dir: str, config: RunConfig, meta: Mapping[str, Any], params: Params,
             summary: Mapping[str, Any]) -> None:
    """Write a trained model into ``run_dir``: the config, ``npi.json`` (``meta`` and the
    training ``summary``) and an orbax checkpoint of ``params``."""
    os.makedirs(run_dir, exist_ok=True)
    save_config(config, os.path.join(run_dir, rd.CONFIG))
    with open(os.path.join(run_dir, NPI_JSON), "w") as f:
        json.dump({**meta, "training": dict(summary)}, f, indent=1)
    # A run trained again into the same directory replaces the old parameters: orbax keeps an
    # existing checkpoint of the same step, which would silently pair the new npi.json with
    # the old weights.
    shutil.rmtree(os.path.join(run_dir, rd.CHECKPOINTS), ignore_errors=True)
    checkpointer = rd.Checkpointer(run_dir)
    try:
        checkpointer.save(int(summary["updates"]), {"params": params},
                          {"updates": summary["updates"], "wall_time": summary["wall_time"]})
    finally:
        checkpointer.close()


def is_npi_run(path: str) -> bool:
    return rd.is_run_dir(path) and os.path.exists(os.path.join(path, NPI_JSON))


def load_run(path: str) -> LoadedRun:
    """The config, model and parameters of an NPI run directory.

    Raises:
        RunConfigError: not an NPI run directory.
    """
    if not is_npi_run(path):
        raise RunConfigError(f"{path} is not an NPI run directory (no {rd.CONFIG} and "
                             f"{NPI_JSON}; train one with `npigym npi-train`)")
    config = read_config(os.path.join(path, rd.CONFIG))
    with open(os.path.join(path, NPI_JSON)) as f:
        meta = json.load(f)
    model = make_model(config.model, ProgramTable.from_json(meta["table"]))
    abstract = {"params": rd.abstract(jax.eval_shape(model.init, jax.random.PRNGKey(0)))}
    checkpointer = rd.Checkpointer(path)
    try:
        state, _ = checkpointer.restore(abstract)
    finally:
        checkpointer.close()
    return LoadedRun(config, model, state["params"], meta)


def plot_curves(run_dir: str) -> Optional[str]:
    """Loss and teacher-forced token accuracy per task against updates (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = os.path.join(run_dir, rd.METRICS_JSONL)
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    if not records:
        return None
    x = [r["update"] for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    axes[0].semilogy(x, [r["loss"] for r in records])
    axes[0].set_title("training loss (NLL, sum over tasks)")
    for k in sorted(records[-1]):
        if k.endswith("/token_acc"):
            axes[1].plot(x, [1 - r[k] for r in records], label=k.split("/")[0])
    axes[1].set_yscale("log")
    axes[1].set_title("teacher-forced token error")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = os.path.join(run_dir, rd.CURVES)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


# ----------------------------------------------------------------------------------------------
# Evaluation and play.
# ----------------------------------------------------------------------------------------------
def runner_for(run: LoadedRun, env: Any, diagnose: bool = False) -> Any:
    """The jitted batched interpreter of ``run``'s model on ``env`` (``diagnose``: also
    record the first decision that differs from the env's expert)."""
    layout = task_layout(env)
    run.model.table.task(layout.name)  # KeyError naming the tasks the model knows
    tables = interpreter.task_tables(run.model.table, env,
                                     run.meta.get("end_modes", {}).get(layout.name))
    step = interpreter.model_step(run.model, layout.name)
    return interpreter.make_runner(env, step, run.model.zero_state, tables, run.config.mask,
                                   run.config.alpha, diagnose)


def host_policy(run: LoadedRun, env: Any) -> interpreter.HostPolicy:
    """``policy(state, timestep) -> action`` for ``npigym.experiments.play``."""
    layout = task_layout(env)
    return interpreter.HostPolicy(interpreter.model_step(run.model, layout.name), run.params,
                                  run.model.zero_state,
                                  interpreter.task_tables(
                                      run.model.table, env,
                                      run.meta.get("end_modes", {}).get(layout.name)),
                                  env.max_depth,
                                  run.config.mask, run.config.alpha)


def eval_specs(run: LoadedRun, env_id: Optional[str], options: Mapping[str, Any]
               ) -> List[Dict[str, Any]]:
    """The envs to evaluate: ``env_id`` with ``options``, or every env the run trained on."""
    if env_id is not None:
        return [{"env_id": env_id, "env_kwargs": dict(options)}]
    import npigym

    seen, specs = set(), []
    for spec in run.meta.get("env_list", []):
        spec = {"env_id": spec["env_id"], "env_kwargs": {**spec["env_kwargs"], **options}}
        # Trace files of one env at several sizes (Sorting at lengths 2, 3, ...) are one env.
        knobs = getattr(npigym.spec(spec["env_id"]).load(), "size_knobs", ())
        key = json.dumps([spec["env_id"], {k: v for k, v in spec["env_kwargs"].items()
                                           if k not in knobs}], sort_keys=True)
        if key not in seen:
            seen.add(key)
            specs.append(spec)
    return specs


def length_rows(run: LoadedRun, spec: Mapping[str, Any], lengths: Sequence[Optional[int]],
                episodes: int, batch: int, seed: int = 0, out: Any = None,
                diagnose: bool = False) -> List[Dict[str, Any]]:
    """Success rate of ``run`` on ``spec``'s env at every size in ``lengths``.

    With ``diagnose`` a row also counts the episodes whose decisions left the expert's
    (``diverged``) and names the first such decision of each (``divergences``: ``{"frame:
    expert -> model": episodes}``)."""
    rows = []
    for length in lengths:
        env = make_env(spec, length)
        runner = runner_for(run, env, diagnose)
        result = interpreter.evaluate(runner, run.params,
                                      jax.random.PRNGKey(10_000 + seed + (length or 0)),
                                      episodes, batch)
        stats = result.pop("stats")
        failures = {}
        for p in stats.first_failure[~stats.success]:
            name = env.library.names[p] if p >= 0 else "none"
            failures[name] = failures.get(name, 0) + 1
        row = {"env": spec["env_id"], "length": length, **result, "failures": failures}
        if diagnose:
            names = env.library.names
            row["diverged"] = int((stats.diverge_step >= 0).sum())
            row["divergences"] = {}
            for i in np.flatnonzero(stats.diverge_step >= 0):
                e, m = stats.diverge_expert[i], stats.diverge_model[i]
                key = (f"{names[stats.diverge_frame[i]]}: {names[e[0]]}{tuple(e[1:].tolist())}"
                       f" -> {names[m[0]]}{tuple(m[1:].tolist())}")
                row["divergences"][key] = row["divergences"].get(key, 0) + 1
        rows.append(row)
        if out is not None:
            print(f"  {spec['env_id']} size {length}: success {row['success']:.3f} "
                  f"({row['steps']:.0f} steps, {row['seconds']:.1f} s)", file=out, flush=True)
    return rows


def format_rows(rows: Sequence[Mapping[str, Any]], title: str = "") -> str:
    """Markdown: one row per (env, size)."""
    lines = [f"### {title}" if title else "",
             "| env | size | episodes | success | mean steps | truncated | first failing "
             "program (failed episodes) | eval s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        failures = ", ".join(f"{k} {v}" for k, v in sorted(r["failures"].items())) or "-"
        lines.append(f"| {r['env']} | {r['length'] or 'default'} | {r['episodes']} | "
                     f"{r['success']:.3f} | {r['steps']:,.0f} | {r['truncated']:.3f} | "
                     f"{failures} | {r['seconds']:.1f} |")
    return "\n".join(line for line in lines if line) + "\n"


def evaluate_run(path: str, env_id: Optional[str] = None, lengths: Sequence[Optional[int]]
                 = (None,), episodes: int = 100, options: Optional[Mapping[str, Any]] = None,
                 save: bool = True, out: Any = None) -> str:
    """Evaluate an NPI run at ``lengths`` on ``env_id`` (default: the envs it trained on);
    prints progress to ``out``, saves ``eval.md`` / ``eval.json`` and returns the table."""
    run = load_run(path)
    rows = []
    for spec in eval_specs(run, env_id, options or {}):
        rows += length_rows(run, spec, lengths, episodes, run.config.eval_batch, out=out)
    table = format_rows(rows, f"NPI {os.path.basename(os.path.abspath(path))}: success rate "
                              f"per instance size (mask={run.config.mask}, "
                              f"alpha={run.config.alpha})")
    if save:
        with open(os.path.join(path, rd.EVAL_MD), "w") as f:
            f.write(table)
        with open(os.path.join(path, rd.EVAL_JSON), "w") as f:
            json.dump({"rows": rows}, f, indent=1)
    return table


# ----------------------------------------------------------------------------------------------
# Command line: npi-train, npi-eval, npi-play.
# ----------------------------------------------------------------------------------------------
def _lengths(text: Optional[str]) -> List[Optional[int]]:
    if not text:
        return [None]
    try:
        lengths = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"npigym: --lengths takes sizes like 20,100,1000, not {text!r}") \
            from None
    if not lengths or min(lengths) < 1:
        raise SystemExit("npigym: --lengths must be positive sizes")
    return lengths


def train_from_command_line(traces: Sequence[str], options: Sequence[str],
                            run_dir: Optional[str] = None, runs_root: str = "runs",
                            config_path: Optional[str] = None, base: Optional[str] = None,
                            train_programs: Optional[str] = None, lengths: Optional[str] = None,
                            final_eval: bool = True) -> str:
    """``npigym npi-train`` (or ``npigym train --agent npi``) from its arguments: a YAML
    config, then the flags, then ``key=value`` overrides. Returns the run directory.

    Raises:
        SystemExit: with a clear message for bad configs and unusable trace files.
    """
    try:
        tree: Dict[str, Any] = {}
        if config_path:
            with open(config_path) as f:
                tree.update(yaml.safe_load(f) or {})
        config = config_from_dict(tree)
        extra: Dict[str, Any] = {}
        if traces:
            extra["traces"] = tuple(traces)
        if base:
            extra["base_run"] = base
        if train_programs:
            extra["train_programs"] = train_programs
        if lengths:
            extra["eval_lengths"] = tuple(x for x in _lengths(lengths) if x)
        config = config_from_dict({**extra, **parse_overrides(options)}, base=config)
        return train_run(config, run_dir=run_dir, runs_root=runs_root, final_eval=final_eval)
    except (RunConfigError, npi_data.TraceInputError, trace_files.TraceFileError,
            npi_training.NonFiniteError, OSError) as e:
        raise SystemExit(f"npigym npi-train: {e}") from None


def eval_from_command_line(run_dir: str, lengths: Optional[str], episodes: int = 100,
                           env_id: Optional[str] = None, options: Sequence[str] = ()) -> str:
    """``npigym npi-eval`` (or ``npigym eval RUN_DIR`` on an NPI run): prints progress and
    returns the markdown table (also saved in the run directory)."""
    try:
        return evaluate_run(run_dir, env_id, _lengths(lengths), episodes,
                            parse_overrides(options), out=sys.stdout)
    except (RunConfigError, KeyError, ValueError) as e:
        raise SystemExit(f"npigym npi-eval: {e}") from None


def env_and_policy(run_dir: str, size: Optional[int] = None, env_id: Optional[str] = None,
                   options: Sequence[str] = ()) -> Tuple[Any, interpreter.HostPolicy]:
    """The env (the run's first, or ``env_id``) at ``size`` and the trained NPI as a host
    policy, for ``npigym.experiments.play`` (``npigym npi-play`` / ``npigym play RUN_DIR``)."""
    try:
        run = load_run(run_dir)
        spec = eval_specs(run, env_id, parse_overrides(options))[0]
        env = make_env(spec, size)
        return env, host_policy(run, env)
    except (RunConfigError, KeyError, ValueError) as e:
        raise SystemExit(f"npigym npi-play: {e}") from None


def _run_train(args: argparse.Namespace) -> int:
    train_from_command_line(args.traces, args.options, args.run_dir, args.runs_root,
                            args.config, args.base, args.train_programs, args.lengths,
                            final_eval=not args.no_eval)
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    table = eval_from_command_line(args.run_dir, args.lengths, args.episodes, args.env,
                                   args.options)
    print(table)
    print(f"saved {os.path.join(args.run_dir, rd.EVAL_MD)}")
    return 0


def play_run(run_dir: str, size: Optional[int] = None, seed: int = 0,
             env_id: Optional[str] = None, options: Sequence[str] = (), compact: bool = False,
             delay: Optional[float] = None, step: bool = False, clear: Optional[bool] = None,
             max_steps: Optional[int] = None, gif: Optional[str] = None) -> int:
    """``npigym npi-play`` (or ``npigym play RUN_DIR`` on an NPI run): the trained NPI solves
    one instance of size ``size`` step by step (``npigym.experiments.play``). ``clear`` and
    ``delay`` default to redrawing every 0.15 s on a terminal, scrolling at once otherwise.
    Returns the exit status: 0 if the instance was solved."""
    from npigym.experiments.play import play, save_gif

    env, policy = env_and_policy(run_dir, size, env_id, options)
    interactive = sys.stdout.isatty() if clear is None else clear
    delay = delay if delay is not None else (0.15 if interactive else 0.0)
    result = play(env, policy, jax.random.PRNGKey(seed), show_states=not compact, delay=delay,
                  wait_for_enter=step, clear=interactive, keep_states=gif is not None,
                  max_steps=max_steps)
    if gif:
        frames = save_gif(env, result.states, gif)
        print(f"wrote {gif} ({frames} frames)")
    return 0 if result.success else 1


def main_train(traces: Sequence[str], overrides: Sequence[str] = (),
               run_dir: Optional[str] = None, **kwargs: Any) -> str:
    """``npigym train --agent npi --traces F [key=value ...]``: train into ``run_dir`` (a new
    directory under ``runs_root`` when None) and return it; ``kwargs`` are
    :func:`train_from_command_line`'s (``runs_root``, ``config_path``, ``base``,
    ``train_programs``, ``lengths``, ``final_eval``)."""
    return train_from_command_line(traces, overrides, run_dir, **kwargs)


def _run_play(args: argparse.Namespace) -> int:
    return play_run(args.run_dir, args.size, args.seed, args.env, args.options, args.compact,
                    args.delay, args.step, False if args.no_clear else None, args.max_steps,
                    args.gif)


def add_parser(subparsers: Any) -> None:
    """The ``npi-train``, ``npi-eval`` and ``npi-play`` subcommands."""
    p = subparsers.add_parser(
        "npi-train", help="train an NPI on expert traces; writes a run directory",
        description="Train an NPI on trace files (`npigym traces`). key=value words set the "
                    "config: model.core_sizes=[256,256], train.learning_rate=1e-4, or short "
                    "keys when unambiguous (num_updates=2000).")
    p.add_argument("--traces", action="append", default=[],
                   help="a trace file (repeat for several tasks: one multi-task NPI)")
    p.add_argument("--config", default=None, help="a YAML config (e.g. a run's config.yaml)")
    p.add_argument("--base", default=None, metavar="RUN_DIR",
                   help="start from this NPI run (add the new traces' programs to it)")
    p.add_argument("--train-programs", default=None,
                   help="train only these programs' memory rows, e.g. MAX,RJMP (frozen core)")
    p.add_argument("--lengths", default=None, help="sizes of the final evaluation")
    p.add_argument("--run-dir", default=None, help="write the run here")
    p.add_argument("--runs-root", default="runs", help="parent of new run directories")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.set_defaults(run=_run_train, takes_options=True)

    p = subparsers.add_parser("npi-eval", help="success rate of an NPI run per instance size")
    p.add_argument("run_dir", help="a run directory of `npigym npi-train`")
    p.add_argument("--env", default=None,
                   help="evaluate on this env (default: the envs the run trained on)")
    p.add_argument("--lengths", default=None, help="sizes, e.g. 20,100,1000")
    p.add_argument("--episodes", type=int, default=100, help="episodes per size")
    p.set_defaults(run=_run_eval, takes_options=True)

    p = subparsers.add_parser("npi-play", help="watch a trained NPI solve an instance step by "
                                               "step")
    p.add_argument("run_dir", help="a run directory of `npigym npi-train`")
    p.add_argument("--env", default=None, help="env id (default: the run's first env)")
    p.add_argument("--size", "--digits", "--length", dest="size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gif", default=None)
    p.add_argument("--delay", type=float, default=None)
    p.add_argument("--step", action="store_true", help="wait for Enter after each step")
    p.add_argument("--compact", action="store_true", help="print calls only")
    p.add_argument("--no-clear", action="store_true")
    p.add_argument("--max-steps", type=int, default=None)
    p.set_defaults(run=_run_play, takes_options=True)


def build_parser() -> argparse.ArgumentParser:
    """A parser with only the NPI subcommands (``python -m npigym.experiments.npi_runs``)."""
    parser = argparse.ArgumentParser(prog="npigym", description=__doc__.split("\n\n")[0])
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``npi-train``, ``npi-eval`` or ``npi-play`` from ``argv`` (``key=value`` words are
    config overrides), without the rest of ``npigym``'s command line."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    options = [w for w in extra if "=" in w and not w.startswith("-")]
    unknown = [w for w in extra if w not in options]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.options = options
    return args.run(args)


__all__ = [
    "LoadedRun",
    "RunConfig",
    "RunConfigError",
    "config_from_dict",
    "env_and_policy",
    "eval_from_command_line",
    "evaluate_run",
    "host_policy",
    "is_npi_run",
    "load_run",
    "main",
    "main_train",
    "make_env",
    "play_run",
    "prepare",
    "runner_for",
    "save_run",
    "train_from_command_line",
    "train_run",
]


if __name__ == "__main__":
    sys.exit(main())
