"""``npigym train``: train an agent, writing a run directory (see ``run_dir``).

    npigym train --env Addition-v0 --agent a2c [--config FILE_OR_PRESET] [key=value ...]
    npigym train --resume RUN_DIR [total_env_steps=...]

The host loop is thin: one jitted call runs ``updates_per_call`` updates for every seed (a
``lax.scan`` inside ``jax.vmap``); between calls the host logs the returned metrics, updates the
progress bar and saves checkpoints. Resuming restores the whole training state (parameters,
optimizer, environments, recurrent states, keys), so a resumed run continues exactly as the
uninterrupted one would have.

Faults. The host checks each call's metrics (which it receives anyway) for NaN and infinity;
a non-finite loss, gradient norm or other metric stops the run with
:class:`NonFiniteError` naming the quantity, call, update and seed, without logging that call
or saving its state (the last good state is checkpointed instead). SIGTERM and SIGINT set a
flag that the loop checks between calls: the run stops after the current call, saves a
checkpoint and raises :class:`TrainingInterruptedError` (a second signal interrupts at once). A
resumed run continues from its newest intact checkpoint's call and first drops the metric
records logged after it, so every call is logged exactly once.

Options of the loop: ``keep_best`` scores every checkpoint on a validation set and keeps each
seed's best params (``npigym.experiments.best``); a ``size_curriculum`` lives in the env state
(``npigym.agents.size_curriculum``) and is logged per seed (``curriculum_size_per_seed``).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from npigym.agents.actor_critic import Trainer, TrainState, select_seed, summarize
from npigym.experiments import run_dir as rd
from npigym.experiments.config import (
    PRESETS,
    ConfigError,
    TrainConfig,
    load_config,
    read_config,
    save_config,
)
from npigym.experiments.factory import make_agent, make_env
from npigym.experiments.logger import MetricsLogger, plot_learning_curves


class NonFiniteError(RuntimeError):
    """A call's metrics hold a NaN or an infinity; the run stopped before logging or saving it."""


class TrainingInterruptedError(Exception):
    """SIGTERM or SIGINT stopped the run between calls (after a final checkpoint)."""

    def __init__(self, run_dir: str, signum: int, calls: int):
        self.run_dir, self.signum, self.calls = run_dir, signum, calls
        super().__init__(f"stopped by {signal.Signals(signum).name} after call {calls}; "
                         f"checkpoint saved; continue with `npigym train --resume {run_dir}`")


# Metrics that are per-episode sums or flags: finite by construction, NaN-free "no data".
_UNCHECKED = ("episodes", "program_episodes", "program_open")


def first_non_finite(metrics: Dict[str, Any]) -> Optional[Tuple[str, float, Tuple[int, ...]]]:
    """``(name, value, index)`` of the first NaN or infinity in a call's host metrics (leading
    seed and update axes), or None."""
    for name in sorted(metrics):
        if name in _UNCHECKED:
            continue
        x = np.asarray(metrics[name])
        if not np.issubdtype(x.dtype, np.inexact):
            continue
        bad = ~np.isfinite(x)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            return name, float(x[index]), index
    return None


# Keys a resumed run may change: how long it runs and what it logs, not what it trains.
RESUMABLE_KEYS = ("total_env_steps", "time_limit_s", "checkpoint_every", "eval_lengths",
                  "eval_episodes", "eval_greedy", "eval_variants")
# Keys that do not change the compiled training functions (``build`` ignores them).
UNBUILT_KEYS = (*RESUMABLE_KEYS, "keep_best", "best_size", "best_episodes")


def init_fns(trainer: Trainer, config: TrainConfig
             ) -> Tuple[Callable[[], TrainState], Callable[[TrainState], Any]]:
    """``init() -> TrainState`` and jitted ``train(state) -> (state, metrics)`` for all seeds
    (a leading seed axis on every leaf)."""
    seeds = jnp.arange(config.num_seeds) + config.seed

    def init() -> TrainState:
        return jax.vmap(trainer.init)(jax.vmap(jax.random.PRNGKey)(seeds))

    return init, jax.jit(jax.vmap(trainer.train))


# Built agents by config (what they train, not how long): a second run, a resume, or an
# evaluation in the same process reuses the compiled functions instead of compiling again.
_BUILT: Dict[str, Tuple[Any, ...]] = {}


def build(config: TrainConfig) -> Tuple[Any, Any, Trainer, Callable[[], TrainState],
                                        Callable[[TrainState], Any]]:
    """``(env, network, trainer, init, train)`` for ``config``, cached per process."""
    import dataclasses

    key = repr(dataclasses.replace(config, **{k: getattr(TrainConfig(), k)
                                              for k in UNBUILT_KEYS}))
    if key not in _BUILT:
        env = make_env(config)
        network, trainer = make_agent(config, env)
        _BUILT[key] = (env, network, trainer, *init_fns(trainer, config))
    return _BUILT[key]  # type: ignore[return-value]


def steps_per_call(config: TrainConfig) -> int:
    a = config.a2c
    if config.meta.enabled:  # a meta update takes K inner and 1 (or K, mixing) outer rollouts
        from npigym.meta_gradient.core import rollouts_per_meta_update

        return a.num_envs * a.rollout_length * a.updates_per_call * sum(
            rollouts_per_meta_update(config.meta))
    return a.num_envs * a.rollout_length * a.updates_per_call


def call_record(metrics: Dict[str, Any], config: TrainConfig, program_names: Optional[Sequence[str]]
                ) -> Dict[str, Any]:
    """One JSONL record from a call's metrics (leading seed axis): pooled means, per seed
    success, and per curriculum program success."""
    pooled = summarize(metrics)
    record: Dict[str, Any] = {k: v for k, v in pooled.items()
                              if not isinstance(v, np.ndarray)}
    record["success_per_seed"] = [summarize(select_seed(metrics, s))["success"]
                                  for s in range(config.num_seeds)]
    if program_names is not None and "program_success" in pooled:
        record["program_success"] = {
            program_names[i]: float(r) for i, r in enumerate(pooled["program_success"])
            if pooled["program_episodes"][i] > 0}
    if program_names is not None and "program_open" in pooled:  # an unlocking curriculum
        record["programs_open"] = [program_names[i] for i, is_open
                                   in enumerate(pooled["program_open"]) if is_open]
    if "curriculum_size" in metrics:  # a size curriculum: where each seed is after the call
        last = np.asarray(metrics["curriculum_size"]).reshape(config.num_seeds, -1)[:, -1]
        record["curriculum_size"] = float(np.mean(last))
        record["curriculum_size_per_seed"] = [int(x) for x in last]
        rate = np.asarray(metrics["curriculum_size_success"]).reshape(config.num_seeds, -1)
        record["curriculum_size_success"] = float(np.mean(rate[:, -1]))
    return record


def train(config: TrainConfig, run_dir: Optional[str] = None, runs_root: str = "runs",
          resume: bool = False, progress: bool = True, final_eval: bool = True,
          out: Any = None, on_call: Optional[Callable[[Dict[str, Any]], None]] = None) -> str:
    """Train as ``config`` says; returns the run directory.

    Args:
        config: the (resolved) training config.
        run_dir: write here (created if needed); default: a new ``runs_root/<env>-<agent>-...``.
        runs_root: parent of new run directories.
        resume: continue ``run_dir`` from its last checkpoint.
        progress: show a progress bar.
        final_eval: evaluate at ``config.eval_lengths`` at the end.
        out: where to print (default stdout).
        on_call: called with each call's record once it is logged (a sweep backend reports
            it to Ray Tune, whose schedulers may stop the run by raising).
    """
    out = out or sys.stdout
    env, network, trainer, init, train_call = build(config)
    library = getattr(getattr(env, "unwrapped", env), "library", None)
    names = library.names if library is not None else None

    if run_dir is None:
        run_dir = rd.new_run_dir(runs_root, config.env, config.agent)
    os.makedirs(run_dir, exist_ok=True)
    save_config(config, os.path.join(run_dir, rd.CONFIG))
    checkpointer = rd.Checkpointer(run_dir)
    progress_info: Dict[str, Any] = {"calls": 0, "wall_time": 0.0}
    if resume:
        try:
            state, saved = checkpointer.restore(rd.abstract(jax.eval_shape(init)))
        except BaseException:
            checkpointer.close()
            raise
        # The checkpoint's step is its call (saved as such); wall time from its own record.
        progress_info = {"calls": int(saved["checkpoint"]),
                         "wall_time": float(saved.get("wall_time", 0.0))}
        print(f"resuming {run_dir} from call {progress_info['calls']} "
              f"({float(state.env_steps[0]):,.0f} env steps per seed)", file=out)
    else:
        state = jax.jit(init)()
    keeper = None
    if config.keep_best:
        from npigym.experiments.best import BestKeeper

        try:
            keeper = BestKeeper(config, run_dir, jax.eval_shape(init).params, resume=resume)
        except BaseException:
            checkpointer.close()
            raise
    logger = MetricsLogger(run_dir, truncate_to_call=progress_info["calls"] if resume else None)
    per_call = steps_per_call(config)
    total_calls = math.ceil(config.total_env_steps / per_call)
    calls = int(progress_info["calls"])
    wall_before = float(progress_info["wall_time"])

    from tqdm import tqdm

    bar = tqdm(total=total_calls * per_call, initial=calls * per_call, unit=" steps",
               unit_scale=True, disable=not progress, file=out, dynamic_ncols=True,
               desc=f"{config.env} (compiling ...)")
    start = time.perf_counter()
    time_limited = False
    last_saved = calls
    stop: Dict[str, Any] = {"signal": None}
    previous_handlers = _install_stop_handlers(stop)
    try:
        while calls < total_calls and stop["signal"] is None:
            t0 = time.perf_counter()
            new_state, metrics = train_call(state)
            metrics = jax.device_get(metrics)
            bad = first_non_finite(metrics)
            if bad is not None:  # neither logged nor saved; `finally` saves the last good state
                name, value, index = bad
                where = f"seed {config.seed + index[0]}" + (
                    f", update {index[1] + 1} of {config.a2c.updates_per_call}"
                    if len(index) > 1 else "")
                kept = (f"last good state saved as checkpoint {calls} in {run_dir}" if calls
                        else "no checkpoint saved")
                raise NonFiniteError(f"non-finite {name} ({value}) at call {calls + 1} "
                                     f"({where}); stopped, {kept}")
            elapsed = time.perf_counter() - start
            record = {"call": calls + 1, "env_steps": float(new_state.env_steps[0]),
                      "wall_time": round(wall_before + elapsed, 3),
                      "steps_per_s": per_call * config.num_seeds / (time.perf_counter() - t0),
                      "env": config.env, **call_record(metrics, config, names)}
            time_up = config.time_limit_s is not None and elapsed >= config.time_limit_s
            save_now = ((calls + 1) % config.checkpoint_every == 0 or calls + 1 >= total_calls
                        or time_up)
            if keeper is not None and save_now:  # before the checkpoint (see best.py)
                record.update(keeper.consider(calls + 1, record["env_steps"],
                                              new_state.params))
            logger.write(record)
            state, calls = new_state, calls + 1
            if on_call is not None:
                on_call(record)
            bar.set_description_str(config.env, refresh=False)
            bar.update(per_call)
            bar.set_postfix(ret=f"{record['return']:.3f}", success=f"{record['success']:.3f}",
                            refresh=False)
            if save_now:
                checkpointer.save(calls, state, {"calls": calls,
                                                 "wall_time": wall_before + elapsed})
                last_saved = calls
            if time_up:
                time_limited = calls < total_calls
                break
    finally:
        _restore_handlers(previous_handlers)
        bar.close()
        elapsed = time.perf_counter() - start
        try:
            if calls != last_saved:
                checkpointer.save(calls, state, {"calls": calls,
                                                 "wall_time": wall_before + elapsed})
        finally:
            checkpointer.close()
            logger.close()
    if stop["signal"] is not None:
        raise TrainingInterruptedError(run_dir, stop["signal"], calls)
    if time_limited:
        print(f"stopped at the time limit ({config.time_limit_s:g} s) after "
              f"{calls * per_call:,} env steps of {total_calls * per_call:,}", file=out)
    curves = plot_learning_curves(run_dir)
    print(f"trained {calls * per_call:,} env steps per seed x {config.num_seeds} seed(s) in "
          f"{wall_before + elapsed:.0f} s; run directory {run_dir}", file=out)
    if curves:
        print(f"learning curves: {curves}", file=out)
    if final_eval and config.eval_lengths is not None:
        from npigym.experiments.evaluate import evaluate_run

        lengths = list(config.eval_lengths) or [None]
        print(evaluate_run(run_dir, lengths, config.eval_episodes, config.eval_greedy,
                           progress=progress), file=out)
        if config.keep_best:
            print(evaluate_run(run_dir, lengths, config.eval_episodes, config.eval_greedy,
                               progress=progress, best=True), file=out)
    return run_dir


def _install_stop_handlers(stop: Dict[str, Any]) -> Dict[int, Any]:
    """SIGTERM / SIGINT set ``stop["signal"]`` (a second one interrupts at once); returns the
    previous handlers. Only the main thread may install handlers: elsewhere, none."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        if stop["signal"] is not None:
            raise KeyboardInterrupt
        stop["signal"] = signum

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_handlers(previous: Dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


# ----------------------------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------------------------
def _run_npi_train(args: argparse.Namespace) -> int:
    """``--agent npi``: supervised training on trace files (``npigym.experiments.npi_runs``)."""
    from npigym.experiments import npi_runs

    if args.resume or args.env or args.meta_gradient or args.meta_steps:
        raise SystemExit("npigym train: --agent npi trains on --traces files (their env comes "
                         "from the traces); --env, --resume and --meta-* are a2c options")
    if not args.traces:
        raise SystemExit("npigym train: --agent npi needs --traces FILE (from `npigym traces`)")
    npi_runs.train_from_command_line(args.traces, args.options, args.run_dir, args.runs_root,
                                     args.config, final_eval=not args.no_eval)
    return 0


def _run_train(args: argparse.Namespace) -> int:
    if args.agent == "npi":
        return _run_npi_train(args)
    if args.traces:
        raise SystemExit("npigym train: --traces is for --agent npi (the a2c agent learns from "
                         "reward alone)")
    try:
        if args.resume:
            if not rd.is_run_dir(args.resume):
                raise ConfigError(f"--resume {args.resume}: not a run directory")
            if args.config or args.env:
                raise ConfigError("--resume continues a run as configured; use key=value "
                                  f"for {', '.join(RESUMABLE_KEYS)}")
            saved = read_config(os.path.join(args.resume, rd.CONFIG))
            config = load_config(os.path.join(args.resume, rd.CONFIG), args.options)
            changed = [f for f in TrainConfig.__dataclass_fields__
                       if getattr(config, f) != getattr(saved, f) and f not in RESUMABLE_KEYS]
            if changed:
                raise ConfigError(f"a resumed run cannot change {changed}; it may change "
                                  f"{', '.join(RESUMABLE_KEYS)}")
            train(config, run_dir=args.resume, resume=True, progress=not args.quiet,
                  final_eval=not args.no_eval)
            return 0
        if args.env and args.config:
            _check_env_agrees(args.env, args.config)
        base = {"env": args.env} if args.env else {}
        if args.agent:
            base["agent"] = args.agent
        meta = {k: v for k, v in (("estimator", args.meta_gradient),
                                  ("meta_steps", args.meta_steps)) if v is not None}
        if meta:
            base["meta"] = meta
        config = load_config(args.config, args.options, base=base)
        train(config, run_dir=args.run_dir, runs_root=args.runs_root, progress=not args.quiet,
              final_eval=not args.no_eval)
    except TrainingInterruptedError as e:
        print(f"npigym train: {e}", file=sys.stderr)
        return 128 + e.signum
    except (ConfigError, rd.CheckpointError, NonFiniteError) as e:
        raise SystemExit(f"npigym train: {e}") from None
    return 0


def _check_env_agrees(env: str, source: str) -> None:
    """``--env X --config SOURCE`` where the preset or file names another env: an error naming
    both (the config's env_kwargs, network and settings were chosen for its env, so quietly
    training another env with them, or quietly ignoring --env, would both surprise)."""
    from npigym.experiments.config import read_source

    named = read_source(source).get("env")
    if named is not None and named != env:
        raise ConfigError(f"--env {env} disagrees with --config {source}, which trains {named}; "
                          f"drop --env, or keep it and write env={env} to override the config "
                          f"deliberately")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train an agent; writes a run directory",
        description="Train an agent. key=value words override the config: full keys "
                    "(a2c.learning_rate=3e-4), unambiguous short ones (learning_rate=3e-4), "
                    "or environment keywords (max_digits=5).")
    p.add_argument("--env", default=None, help="environment id (default: the config's)")
    p.add_argument("--agent", default=None,
                   help="a2c (reward alone; default) or npi (supervised on --traces)")
    p.add_argument("--traces", action="append", default=[],
                   help="with --agent npi: a trace file of `npigym traces` (repeat the flag "
                        "for several tasks: one multi-task NPI)")
    p.add_argument("--meta-gradient", default=None, choices=("none", "biased", "debiased"),
                   help="tune the agent's hyperparameters by meta-gradients (meta.estimator); "
                        "meta.* keys set the rest (meta.learn=[discount], meta.mixing=uniform)")
    p.add_argument("--meta-steps", default=None, type=int,
                   help="inner updates per meta-gradient, K (meta.meta_steps)")
    p.add_argument("--config", default=None,
                   help="a YAML file or a preset: " + ", ".join(PRESETS))
    p.add_argument("--run-dir", default=None, help="write the run here")
    p.add_argument("--runs-root", default="runs", help="parent of new run directories")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue a run from its last checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_train, takes_options=True)
