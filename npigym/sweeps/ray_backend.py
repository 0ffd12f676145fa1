"""``npigym sweep --backend ray``: the same trials as Ray Tune trials, on a machine or a cluster.

Each trial is one Ray Tune trial that runs :func:`npigym.experiments.train.train` on its own
run directory (the same directory, config and seed as the local backend's, so the final
metrics agree up to float tolerance: a vmapped trial and a trial alone differ only in XLA's
batching). Every call's record is reported to Tune, so Tune's schedulers (``ray.scheduler:
asha``) can stop weak trials early; a stopped trial keeps its run directory and is marked
``stopped``. ``--address`` (or ``ray.address`` in the spec) joins a running cluster; without it
a local Ray instance starts with this machine's CPUs. ``ray.resources_per_trial`` (default
``{cpu: 1}``) and ``ray.max_concurrent_trials`` set how trials share it.

Resuming is the sweep's own, not Tune's: the index says which trials finished (never rerun);
the others start again from their run directory's newest checkpoint (``train(resume=True)``),
so a sweep killed at any point resumes with the same command, as with the local backend.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Dict, Optional, Sequence

from npigym.experiments import run_dir as rd
from npigym.experiments.config import to_dict
from npigym.sweeps.runner import (
    DONE,
    FAILED,
    RUNNING,
    STOPPED,
    check_metric,
    final_metric,
    group_trials,
    prepare,
    trial_dir,
    write_index,
)
from npigym.sweeps.spec import SweepError, SweepSpec, Trial


def _import_ray() -> Any:
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise SweepError("--backend ray needs Ray Tune: pip install 'npigym[sweep]'") from None
    return ray


def _scalars(record: Dict[str, Any]) -> Dict[str, float]:
    return {k: float(v) for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def run_trial(params: Dict[str, Any]) -> None:
    """The Tune trainable: train one trial in its run directory, reporting every call."""
    from ray import tune

    from npigym.experiments.config import from_dict
    from npigym.experiments.train import train

    config = from_dict(params["trial"]["config"])
    path = params["trial"]["run_dir"]
    resume = os.path.isdir(os.path.join(path, rd.CHECKPOINTS)) and any(
        name.isdigit() for name in os.listdir(os.path.join(path, rd.CHECKPOINTS)))
    with open(os.devnull, "w") as sink:
        train(config, run_dir=path, resume=resume, progress=False, final_eval=False,
              out=sink, on_call=lambda record: tune.report(_scalars(record)))


def _finished(path: str, config: Any) -> bool:
    """Whether the run directory logged its budget's last call."""
    from npigym.experiments.logger import read_metrics
    from npigym.experiments.train import steps_per_call

    records = read_metrics(path)
    total = math.ceil(config.total_env_steps / steps_per_call(config))
    return bool(records) and records[-1].get("call", 0) >= total


def _progress_callback(total: int, spec: SweepSpec, out: Any) -> Any:
    """One line per trial as it ends (Tune's own tables print the whole config per trial)."""
    from ray import tune

    class Progress(tune.Callback):
        def __init__(self) -> None:
            self.ended = 0

        def _line(self, trial: Any, how: str) -> None:
            self.ended += 1
            result = trial.last_result or {}
            value = result.get(spec.metric.name)
            shown = f"{spec.metric.name} {value:.4f}" if isinstance(value, float) else ""
            print(f"[{self.ended}/{total}] {trial.config['trial']['trial_id']}: {how} after "
                  f"{int(result.get('call', 0))} calls {shown}", file=out, flush=True)

        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            self._line(trial, "done")

        def on_trial_error(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            self._line(trial, "failed")

    return Progress()


def run_ray(sweep_dir: str, spec: SweepSpec, trials: Sequence[Trial],
            address: Optional[str] = None, progress: bool = True, out: Any = None
            ) -> Dict[str, Any]:
    """Run (or resume) the sweep's unfinished trials as Ray Tune trials; returns the index."""
    ray = _import_ray()
    from ray import tune

    out = out or sys.stdout
    options = dict(spec.ray)
    address = address or options.get("address")
    check_metric(spec, group_trials(trials))
    index = prepare(sweep_dir, spec, trials)
    records = index["trials"]
    # A trial the scheduler stopped is finished too: resuming does not rerun it.
    todo = [t for t in trials if records[t.trial_id]["status"] not in (DONE, STOPPED)]
    print(f"sweep {spec.name} on Ray: {len(trials)} trials ({len(trials) - len(todo)} finished "
          f"before); writing {sweep_dir}", file=out, flush=True)
    if not todo:
        return index
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: Dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
        import warnings

        with warnings.catch_warnings():
            # Ray fork-execs its raylet and workers: JAX's threads are not copied into them
            # (exec replaces the child), so JAX's fork warning does not apply here.
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called",
                                    category=RuntimeWarning)
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=os.cpu_count(), **kwargs)
    try:
        for t in todo:
            records[t.trial_id]["status"] = RUNNING
            os.makedirs(trial_dir(sweep_dir, t), exist_ok=True)
        write_index(sweep_dir, index)
        grid = [{"trial_id": t.trial_id, "config": to_dict(t.config),
                 "run_dir": os.path.abspath(trial_dir(sweep_dir, t))} for t in todo]
        scheduler = None
        if options.get("scheduler") == "asha":
            from ray.tune.schedulers import ASHAScheduler

            from npigym.experiments.train import steps_per_call

            rep = todo[0].config
            scheduler = ASHAScheduler(
                time_attr="training_iteration", max_t=math.ceil(
                    rep.total_env_steps / steps_per_call(rep)),
                grace_period=int(options.get("grace_period", 1)))
        resources = dict(options.get("resources_per_trial", (("cpu", 1),)))
        tuner = tune.Tuner(
            tune.with_resources(run_trial, resources),
            param_space={"trial": tune.grid_search(grid)},
            tune_config=tune.TuneConfig(
                metric=spec.metric.name, mode=spec.metric.mode, scheduler=scheduler,
                max_concurrent_trials=options.get("max_concurrent_trials"),
                trial_dirname_creator=lambda trial: trial.config["trial"]["trial_id"]),
            run_config=tune.RunConfig(
                name="tune", storage_path=os.path.abspath(os.path.join(sweep_dir, "ray")),
                verbose=0, callbacks=[_progress_callback(len(todo), spec, out)]
                if progress else None))
        results = tuner.fit()
        errors = {}
        for result in results:
            trial_id = result.config["trial"]["trial_id"]
            if result.error is not None:
                first = str(result.error).strip().splitlines()
                errors[trial_id] = first[-1][:300] if first else type(result.error).__name__
        for t in todo:
            path = trial_dir(sweep_dir, t)
            record = records[t.trial_id]
            record.update(final_metric(path, spec.metric))
            if t.trial_id in errors:
                record.update(status=FAILED, error=errors[t.trial_id])
            elif _finished(path, t.config):
                record["status"] = DONE
            else:
                record["status"] = STOPPED
            write_index(sweep_dir, index)
    finally:
        if started_here:
            ray.shutdown()
    return index
