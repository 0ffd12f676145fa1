"""Running a sweep on one machine: trials grouped by program, each group one vmapped program.

Trials whose configs differ only in values that are arguments of the training program, not
constants of it (:data:`VMAPPED_KEYS`: the seed, the learning rate, discount, lambda, loss
weights, the meta-gradient's step size and outer discount / lambda), share one compiled
program: their states are stacked on a leading axis and ``jax.jit(jax.vmap(trainer.train))``
trains them side by side, as PureJaxRL trains a batch of hyperparameters. Every other key
(network sizes, rollout length, number of envs, env kwargs, the optimizer, clipping, reward
shaping) is baked into the program, so trials that differ there form separate groups, compiled
one after the other.

The sweep directory::

    SWEEP_DIR/spec.yaml            the resolved spec (a resumed sweep must match it)
    SWEEP_DIR/index.json           every trial: config, seed, group, status, final metric
    SWEEP_DIR/groups/<group>/      the group's checkpoints (the stacked state of its trials)
    SWEEP_DIR/trials/<trial>/      an ordinary run directory per trial (config.yaml,
                                   metrics.jsonl / .csv, TensorBoard, checkpoints at the end):
                                   `npigym eval`, `play` and `train --resume` work on it

Resuming (the same command again) skips finished trials, restores each unfinished group from
its newest intact checkpoint and drops the metric records logged after it, so the final
results equal an uninterrupted sweep's, even after ``kill -9``. A trial whose metrics go
non-finite is marked failed and frozen at its last good state; its group trains on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from npigym.agents.actor_critic import HyperParams
from npigym.experiments import run_dir as rd
from npigym.experiments.config import TrainConfig, save_config
from npigym.experiments.logger import MetricsLogger, plot_learning_curves, read_metrics
from npigym.sweeps.spec import EPISODE_METRICS, SweepError, SweepSpec, Trial, spec_digest

SPEC_FILE = "spec.yaml"
INDEX_FILE = "index.json"
GROUPS = "groups"
TRIALS = "trials"

# Config keys that are inputs of the compiled training program (a leading trial axis of the
# state), not constants baked into it.
VMAPPED_KEYS = (*(f"a2c.{f}" for f in HyperParams._fields), "meta.learning_rate",
                "meta.outer_discount", "meta.outer_lambda", "seed")

PENDING, RUNNING, DONE, FAILED, STOPPED = "pending", "running", "done", "failed", "stopped"


class SweepInterruptedError(Exception):
    """SIGTERM or SIGINT stopped the sweep after a checkpoint; the same command resumes."""

    def __init__(self, sweep_dir: str, signum: int):
        import signal

        self.sweep_dir, self.signum = sweep_dir, signum
        super().__init__(f"stopped by {signal.Signals(signum).name}; every group's progress is "
                         f"checkpointed; run the same command to resume {sweep_dir}")


# ----------------------------------------------------------------------------------------------
# Groups.
# ----------------------------------------------------------------------------------------------
def program_key(config: TrainConfig) -> str:
    """What the compiled program depends on: the config with :data:`VMAPPED_KEYS` blanked."""
    default = TrainConfig()
    config = dataclasses.replace(
        config, seed=0,
        a2c=dataclasses.replace(config.a2c, **{f: getattr(default.a2c, f)
                                               for f in HyperParams._fields}),
        meta=dataclasses.replace(config.meta, learning_rate=default.meta.learning_rate,
                                 outer_discount=None, outer_lambda=None))
    return repr(config)


@dataclasses.dataclass(frozen=True)
class Group:
    """Trials trained by one compiled program."""

    group_id: str
    trials: Tuple[Trial, ...]


def group_trials(trials: Sequence[Trial], per_program: Optional[int] = None) -> List[Group]:
    """Trials grouped by :func:`program_key`, in the order their groups first appear; with
    ``per_program``, each such group cut into runs of at most that many trials (a spec's
    ``trials_per_program``). Why one might: vmapping more trials is not always faster. On a
    2-core CPU, 3 Snake seeds of 512 envs vmapped train at 0.64x the env steps / s of one seed
    alone (``benchmarks/results/train_throughput.md``): the batch outgrows the caches."""
    import hashlib

    groups: Dict[str, List[Trial]] = {}
    for t in trials:
        groups.setdefault(program_key(t.config), []).append(t)
    chunks = [(k, ts[i:i + (per_program or len(ts))])
              for k, ts in groups.items() for i in range(0, len(ts), per_program or len(ts))]
    return [Group(f"g{i}-{hashlib.sha1(k.encode()).hexdigest()[:8]}", tuple(ts))
            for i, (k, ts) in enumerate(chunks)]


def trial_hyperparams(configs: Sequence[TrainConfig]) -> Any:
    """The per-trial inputs of ``trainer.init`` stacked on a leading axis: ``(keys, hyper)`` or,
    with meta-gradients, ``(keys, base hyper, meta learning rate)``."""
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray([c.seed for c in configs]))
    if configs[0].meta.enabled:
        from npigym.meta_gradient.trainer import base_hyperparams

        hypers = [base_hyperparams(c.a2c, c.meta) for c in configs]
        lr = jnp.asarray([c.meta.learning_rate for c in configs], jnp.float32)
        return keys, jax.tree.map(lambda *x: jnp.stack(x), *hypers), lr
    hypers = [HyperParams.from_config(c.a2c) for c in configs]
    return keys, jax.tree.map(lambda *x: jnp.stack(x), *hypers)


def init_group(trainer: Any, configs: Sequence[TrainConfig]) -> Callable[[], Any]:
    """``init() -> state`` of a group: ``jax.vmap(trainer.init)`` over the trials' seeds and
    hyperparameters. A trial's slice equals ``npigym train``'s state for its config alone."""
    inputs = trial_hyperparams(configs)

    def init() -> Any:
        return jax.vmap(trainer.init)(*inputs)

    return init


# ----------------------------------------------------------------------------------------------
# The sweep directory.
# ----------------------------------------------------------------------------------------------
def trial_dir(sweep_dir: str, trial: Trial) -> str:
    return os.path.join(sweep_dir, TRIALS, trial.trial_id)


def read_index(sweep_dir: str) -> Dict[str, Any]:
    """``index.json``: ``{"spec_digest", "trials": {trial_id: record}}`` (empty when new)."""
    path = os.path.join(sweep_dir, INDEX_FILE)
    if not os.path.exists(path):
        return {"trials": {}}
    try:
        with open(path) as f:
            index = json.load(f)
    except ValueError:
        raise SweepError(f"{path} is not valid JSON (damaged?); the trials' run directories "
                         "are intact: delete it to rebuild the index from them") from None
    if not isinstance(index, dict) or not isinstance(index.get("trials"), dict):
        raise SweepError(f"{path} is not a sweep index")
    return index


def write_index(sweep_dir: str, index: Dict[str, Any]) -> None:
    rd.atomic_write(os.path.join(sweep_dir, INDEX_FILE), json.dumps(index, indent=1,
                                                                    default=str))


def prepare(sweep_dir: str, spec: SweepSpec, trials: Sequence[Trial]) -> Dict[str, Any]:
    """Create or reopen ``sweep_dir`` for ``spec``; returns the index.

    Raises:
        SweepError: the directory holds another sweep (a different spec).
    """
    os.makedirs(sweep_dir, exist_ok=True)
    digest = spec_digest(spec)
    spec_path = os.path.join(sweep_dir, SPEC_FILE)
    index = read_index(sweep_dir)
    if os.path.exists(spec_path) and index.get("spec_digest") not in (None, digest):
        raise SweepError(f"{sweep_dir} holds another sweep (its spec.yaml differs from this "
                         "one); give another --dir, or delete it to start over")
    rd.atomic_write(spec_path, yaml.safe_dump({**spec.to_dict(), "digest": digest},
                                              sort_keys=False))
    groups = {t.trial_id: g.group_id for g in group_trials(trials, spec.trials_per_program)
              for t in g.trials}
    records = index["trials"]
    for t in trials:
        r = records.setdefault(t.trial_id, {"status": PENDING})
        r.update(config_id=t.config_id, seed=t.seed, values=dict(t.values),
                 group=groups[t.trial_id],
                 run_dir=os.path.relpath(trial_dir(sweep_dir, t), sweep_dir))
    index.update(spec_digest=digest, name=spec.name)
    write_index(sweep_dir, index)
    return index


def final_metric(run_dir: str, metric: Any) -> Dict[str, Any]:
    """The trial's result: the mean of ``metric.name`` over its last ``metric.last`` logged
    calls (finite values only; NaN when none), with its calls and env steps."""
    records = read_metrics(run_dir)
    tail = records[-metric.last:]
    values = [float(r[metric.name]) for r in tail
              if isinstance(r.get(metric.name), (int, float)) and math.isfinite(r[metric.name])]
    return {"metric": metric.name, "value": float(np.mean(values)) if values else math.nan,
            "calls": records[-1]["call"] if records else 0,
            "env_steps": records[-1]["env_steps"] if records else 0.0}


def available_metrics(trainer_train: Callable[[Any], Any], init: Callable[[], Any]) -> List[str]:
    """Names a run's records hold, from the compiled program's outputs (no compile)."""
    _, metrics = jax.eval_shape(trainer_train, jax.eval_shape(init))
    # Sums a record gives as means (return_sum -> return) and per-program vectors.
    pooled = {"episodes", "return_sum", "length_sum", "success_sum", "program_episodes",
              "program_success_sum", "program_open", "program_steps"}
    return sorted({*EPISODE_METRICS, "episodes", "steps_per_s", "env_steps",
                   *(k for k in metrics if k not in pooled)})


# ----------------------------------------------------------------------------------------------
# Running a group.
# ----------------------------------------------------------------------------------------------
def _describe(spec: SweepSpec, group: Group) -> str:
    configs = sorted({t.config_id for t in group.trials})
    seeds = sorted({t.seed for t in group.trials})
    return (f"{len(group.trials)} trials = {len(configs)} config(s) x {len(seeds)} seed(s)")


def run_group(sweep_dir: str, spec: SweepSpec, group: Group, index: Dict[str, Any],
              progress: bool = True, out: Any = None, position: str = "",
              stop: Optional[Dict[str, Any]] = None) -> None:
    """Train ``group``'s unfinished trials as one vmapped program, resuming from its newest
    checkpoint; writes each trial's run directory and updates ``index``."""
    from tqdm import tqdm

    from npigym.agents.actor_critic import select_seed
    from npigym.experiments.train import build, call_record, first_non_finite, steps_per_call

    out = out or sys.stdout
    records = index["trials"]
    # Finished trials, and failed ones (a divergence is deterministic: it would recur), are
    # never rerun; a failed trial rides along frozen until its run directory is finalised.
    todo = [i for i, t in enumerate(group.trials) if records[t.trial_id]["status"] != DONE
            and not (records[t.trial_id]["status"] == FAILED and "value" in records[t.trial_id])]
    if not todo:
        return
    stop = stop if stop is not None else {"signal": None}
    rep = group.trials[0].config
    env, _, trainer, _, train_call = build(rep)
    library = getattr(getattr(env, "unwrapped", env), "library", None)
    names = library.names if library is not None else None
    init = init_group(trainer, [t.config for t in group.trials])
    group_dir = os.path.join(sweep_dir, GROUPS, group.group_id)
    os.makedirs(group_dir, exist_ok=True)
    checkpointer = rd.Checkpointer(group_dir, max_to_keep=2)
    calls, wall_before = 0, 0.0
    try:
        if checkpointer.latest_step() is not None:
            state, saved = checkpointer.restore(rd.abstract(jax.eval_shape(init)), warn=out)
            calls, wall_before = int(saved["checkpoint"]), float(saved.get("wall_time", 0.0))
            print(f"{position}resuming group {group.group_id} from call {calls}", file=out)
        else:
            print(f"{position}group {group.group_id}: {_describe(spec, group)}; compiling "
                  "(a minute or two on a small CPU) ...", file=out, flush=True)
            state = jax.jit(init)()
        failed = {i for i, t in enumerate(group.trials)
                  if records[t.trial_id]["status"] == FAILED}
        frozen = np.zeros(len(group.trials), bool)
        frozen[list(failed)] = True
        loggers = {}
        for i in todo:
            t = group.trials[i]
            path = trial_dir(sweep_dir, t)
            os.makedirs(path, exist_ok=True)
            save_config(t.config, os.path.join(path, rd.CONFIG))
            loggers[i] = MetricsLogger(path, truncate_to_call=calls)
            if records[t.trial_id]["status"] == PENDING:
                records[t.trial_id]["status"] = RUNNING
        write_index(sweep_dir, index)

        per_call = steps_per_call(rep)
        total_calls = math.ceil(rep.total_env_steps / per_call)
        time_limit = rep.time_limit_s
        bar = tqdm(total=total_calls * per_call, initial=calls * per_call, unit=" steps",
                   unit_scale=True, disable=not progress, file=out, dynamic_ncols=True,
                   desc=f"{position}{group.group_id} ({len(group.trials)} trials)")
        start = time.perf_counter()
        last_saved = calls
        try:
            while calls < total_calls and stop["signal"] is None:
                t0 = time.perf_counter()
                new_state, metrics = train_call(state)
                metrics = jax.device_get(metrics)
                newly = []
                for i in range(len(group.trials)):
                    if frozen[i]:
                        continue
                    bad = first_non_finite(select_seed(metrics, i))
                    if bad is not None:
                        newly.append(i)
                        t = group.trials[i]
                        records[t.trial_id].update(
                            status=FAILED, error=f"non-finite {bad[0]} ({bad[1]}) at call "
                            f"{calls + 1}; kept its state of call {calls}")
                        print(f"{position}trial {t.trial_id}: {records[t.trial_id]['error']}",
                              file=out)
                if newly:
                    frozen[newly] = True
                    write_index(sweep_dir, index)
                if frozen.any():  # a failed trial stays at its last good (finite) state
                    keep = jnp.asarray(frozen)
                    new_state = jax.tree.map(
                        lambda old, new, keep=keep: jnp.where(
                            keep.reshape((-1,) + (1,) * (new.ndim - 1)), old, new),
                        state, new_state)
                elapsed = time.perf_counter() - start
                dt = time.perf_counter() - t0
                for i in todo:
                    if frozen[i]:
                        continue
                    t = group.trials[i]
                    one = jax.tree.map(lambda x, i=i: x[i:i + 1], metrics)
                    loggers[i].write({
                        "call": calls + 1, "env_steps": float(new_state.env_steps[i]),
                        "wall_time": round(wall_before + elapsed, 3),
                        "steps_per_s": per_call * len(group.trials) / dt,
                        "env": t.config.env, **call_record(one, t.config, names)})
                state, calls = new_state, calls + 1
                bar.update(per_call)
                if calls % spec.checkpoint_every == 0:
                    checkpointer.save(calls, state, {"calls": calls,
                                                     "wall_time": wall_before + elapsed})
                    last_saved = calls
                if frozen[todo].all():  # every trial left has failed: nothing to train
                    break
                if time_limit is not None and elapsed >= time_limit:
                    print(f"{position}group {group.group_id}: stopped at the time limit "
                          f"({time_limit:g} s) after {calls} of {total_calls} calls", file=out)
                    break
        finally:
            bar.close()
            elapsed = time.perf_counter() - start
            if calls != last_saved:
                checkpointer.save(calls, state, {"calls": calls,
                                                 "wall_time": wall_before + elapsed})
            for logger in loggers.values():
                logger.close()
        if stop["signal"] is not None:
            write_index(sweep_dir, index)
            return
        _finish_trials(sweep_dir, spec, group, index, state, todo, calls,
                       wall_before + elapsed)
    finally:
        checkpointer.close()


def _finish_trials(sweep_dir: str, spec: SweepSpec, group: Group, index: Dict[str, Any],
                   state: Any, todo: Sequence[int], calls: int, wall_time: float) -> None:
    """Each trial's own checkpoint (its slice of the group's state), curves, final metric."""
    records = index["trials"]
    for i in todo:
        t = group.trials[i]
        record = records[t.trial_id]
        path = trial_dir(sweep_dir, t)
        one = jax.tree.map(lambda x, i=i: x[i:i + 1], state)
        saved_calls = calls if record["status"] != FAILED else int(
            final_metric(path, spec.metric)["calls"])
        ckpt = rd.Checkpointer(path)
        try:
            ckpt.save(saved_calls, one, {"calls": saved_calls, "wall_time": wall_time})
        finally:
            ckpt.close()
        plot_learning_curves(path)
        record.update(final_metric(path, spec.metric))
        if record["status"] != FAILED:
            record["status"] = DONE
        write_index(sweep_dir, index)


# ----------------------------------------------------------------------------------------------
# The local backend.
# ----------------------------------------------------------------------------------------------
def check_metric(spec: SweepSpec, groups: Sequence[Group]) -> None:
    """The spec's metric must be one the runs log (checked on each group's program, traced but
    not compiled, before anything trains)."""
    from npigym.experiments.train import build

    for group in groups:
        rep = group.trials[0].config
        _, _, trainer, _, _ = build(rep)
        names = available_metrics(jax.vmap(trainer.train),
                                  init_group(trainer, [rep]))
        if spec.metric.name not in names:
            import difflib

            near = difflib.get_close_matches(spec.metric.name, names, 3)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise SweepError(f"metric {spec.metric.name!r} is not logged by these runs{hint}; "
                             f"they log {', '.join(names)}")


def run_local(sweep_dir: str, spec: SweepSpec, trials: Sequence[Trial], progress: bool = True,
              out: Any = None) -> Dict[str, Any]:
    """Run (or resume) every unfinished trial on this machine, group after group; returns the
    index.

    Raises:
        SweepInterruptedError: SIGTERM / SIGINT (after checkpointing).
    """
    from npigym.experiments.train import _install_stop_handlers, _restore_handlers

    out = out or sys.stdout
    if any(t.config.keep_best for t in trials):
        # The vmapped group loop keeps each trial's latest state only.
        raise SweepError("keep_best is a `npigym train` option: the local sweep backend does "
                         "not keep best checkpoints (use --backend ray, whose trials run "
                         "npigym train's loop)")
    groups = group_trials(trials, spec.trials_per_program)
    check_metric(spec, groups)
    index = prepare(sweep_dir, spec, trials)
    done = sum(index["trials"][t.trial_id]["status"] in (DONE, FAILED) for t in trials)
    print(f"sweep {spec.name}: {len(trials)} trials in {len(groups)} group(s) "
          f"({done} finished before); writing {sweep_dir}", file=out, flush=True)
    stop: Dict[str, Any] = {"signal": None}
    handlers = _install_stop_handlers(stop)
    try:
        for k, group in enumerate(groups):
            run_group(sweep_dir, spec, group, index, progress=progress, out=out,
                      position=f"[{k + 1}/{len(groups)}] ", stop=stop)
            if stop["signal"] is not None:
                raise SweepInterruptedError(sweep_dir, stop["signal"])
    finally:
        _restore_handlers(handlers)
    return index


def summary_table(index: Dict[str, Any], spec: SweepSpec) -> str:
    """Per config: status counts and the mean final metric over its finished seeds."""
    by_config: Dict[str, List[Dict[str, Any]]] = {}
    for r in index["trials"].values():
        by_config.setdefault(r["config_id"], []).append(r)
    rows = []
    for cid, rs in by_config.items():
        vals = [r.get("value", math.nan) for r in rs if r["status"] == DONE]
        finite = [v for v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
        mean = float(np.mean(finite)) if finite else math.nan
        rows.append((mean, cid, len(finite), len(rs)))
    reverse = spec.metric.mode == "max"
    rows.sort(key=lambda r: (math.isnan(r[0]), -r[0] if reverse else r[0]))
    lines = [f"| config | {spec.metric.name} (mean of seeds) | seeds done |", "|---|---|---|"]
    lines += [f"| {cid} | {mean:.4f} | {n}/{total} |" for mean, cid, n, total in rows]
    return "\n".join(lines)


def config_overrides(spec: SweepSpec, values: Dict[str, Any]) -> List[str]:
    """``key=value`` words that turn the base into a config of the sweep (for `npigym train`)."""
    words = list(spec.overrides)
    for key, value in values.items():
        words.append(f"{key}={_literal(value)}")
    return words


def _literal(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
