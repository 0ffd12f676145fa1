"""Shared steps of the NPI benchmark scripts (``benchmarks/npi_*.py``).

Each script follows the seed implementation's three steps with npigym's API, the same calls the
command line makes: collect expert traces (``npigym traces``), train into a run directory
(``npigym npi-train``), evaluate by instance size (``npigym npi-eval``). Results (markdown and
JSON) go to ``benchmarks/results/npi_<name>.*`` with the command that produced them, the
machine, and wall times; run directories go under ``--runs-root`` (not committed).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import jax

import npigym
from npigym import traces
from npigym.agents.npi import training
from npigym.experiments import npi_runs

RESULTS = Path(__file__).resolve().parent / "results"


def command() -> str:
    """The command line that ran this script, as typed from the repository root."""
    repo = RESULTS.parent.parent
    cwd = Path.cwd().resolve()
    prefix = "" if cwd == repo else f"cd {os.path.relpath(cwd, repo)} && "
    python = os.path.relpath(repo / ".venv" / "bin" / "python", cwd)
    return prefix + python + " " + " ".join(shlex.quote(a) for a in sys.argv)


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"jax {jax.__version__} on {jax.default_backend()}; shared with other jobs, so "
            "wall times are noisy (+-30% or more)")


def collect(path: str, env_id: str, episodes: int, seed: int, **kwargs: Any) -> float:
    """Expert traces into ``path`` (skipped if it exists); returns the seconds it took."""
    if os.path.exists(path):
        return 0.0
    start = time.perf_counter()
    env = npigym.make(env_id, **kwargs)
    data = traces.collect(env, jax.random.PRNGKey(seed), episodes)
    traces.save(data, path)
    seconds = time.perf_counter() - start
    print(f"collected {path}: {data.num_episodes} episodes, {data.num_rows:,} decisions "
          f"({seconds:.0f} s)", flush=True)
    return seconds


def train(config: npi_runs.RunConfig, run_dir: str, retrain: bool = False) -> Dict[str, Any]:
    """Train (unless ``run_dir`` holds a finished run and not ``retrain``); returns the run's
    ``npi.json`` metadata (data sizes, training summary with wall time)."""
    if retrain or not npi_runs.is_npi_run(run_dir):
        npi_runs.train_run(config, run_dir=run_dir, final_eval=False)
    with open(os.path.join(run_dir, npi_runs.NPI_JSON)) as f:
        return json.load(f)


def evaluate(run_dir: str, spec: Mapping[str, Any], lengths: Sequence[Optional[int]],
             episodes: Mapping[Optional[int], int] | int, batch: int = 32, seed: int = 0,
             diagnose: bool = False) -> List[Dict[str, Any]]:
    """Success per size of a run on ``spec``'s env (``episodes``: per size or one number;
    ``diagnose``: also where the decisions first left the expert's)."""
    run = npi_runs.load_run(run_dir)
    rows = []
    for length in lengths:
        n = episodes if isinstance(episodes, int) else episodes[length]
        rows += npi_runs.length_rows(run, spec, [length], n, min(batch, n), seed=seed,
                                     out=sys.stdout, diagnose=diagnose)
    return rows


def failures(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(row["failures"].items())) or "-"


def training_line(meta: Mapping[str, Any]) -> str:
    t = meta["training"]
    data = "; ".join(f"{task}: {d['episodes']} episodes, {d['frames']:,} frames, "
                     f"{d['tokens']:,} calls" for task, d in meta["data"].items())
    return (f"{t['updates']:,} updates in {t['wall_time']:.0f} s of training wall time "
            f"(compile included; data: {data})")


def config_line(config: npi_runs.RunConfig) -> str:
    d = npi_runs.config_to_dict(config)
    d.pop("traces")
    return f"`{json.dumps(d)}`"


def write(name: str, markdown: str, payload: Mapping[str, Any]) -> None:
    """``benchmarks/results/npi_<name>.md`` (with the command and machine) and ``.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    header = (f"Command: `{command()}`\n\nMachine: {machine()}. Written {stamp}.\n\n")
    title, _, body = markdown.partition("\n")
    with open(RESULTS / f"npi_{name}.md", "w") as f:
        f.write(f"{title}\n\n{header}{body.lstrip()}")
    with open(RESULTS / f"npi_{name}.json", "w") as f:
        json.dump({"command": command(), "machine": machine(), "written": stamp, **payload},
                  f, indent=1, default=str)
    print(f"wrote {RESULTS / f'npi_{name}.md'}")


# Training settings shared by the benchmarks: Adam at 1e-3 decayed x0.8 every 1,000 updates
# (the paper's staircase schedule, faster: our runs are 10x shorter than its 1e-4 x0.95 / 10k).
TRAIN = {"lr_schedule": "paper", "lr_decay_every": 1000, "lr_decay_rate": 0.8,
         "log_every": 250}


def run_config(traces_files: Sequence[str], model: Optional[Mapping[str, Any]] = None,
               **train: Any) -> npi_runs.RunConfig:
    """A run config over ``traces_files`` with model and training overrides (over ``TRAIN``)."""
    tree: Dict[str, Any] = {"traces": list(traces_files), "train": {**TRAIN, **train}}
    if model:
        tree["model"] = dict(model)
    return npi_runs.config_from_dict(tree)


__all__ = ["RESULTS", "collect", "evaluate", "run_config", "train", "training", "write"]
