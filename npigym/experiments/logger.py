"""Metrics of a run: JSONL and CSV files, TensorBoard events, and learning-curve plots."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any, Dict, List, Optional

from npigym.experiments import run_dir as rd


def _scalar(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class MetricsLogger:
    """Appends one record per host call to ``metrics.jsonl``, ``metrics.csv`` and TensorBoard.

    The CSV's columns are the scalar keys of the first record (a resumed run keeps the file's
    header); JSONL keeps everything, including per-seed and per-program lists.

    A resumed run passes ``truncate_to_call``, its checkpoint's call: records of later calls
    (logged before a crash, and about to be logged again) and a torn last line are dropped
    first, so each call appears exactly once.
    """

    def __init__(self, run_dir: str, tensorboard: bool = True,
                 truncate_to_call: Optional[int] = None):
        self.run_dir = run_dir
        self.jsonl_path = os.path.join(run_dir, rd.METRICS_JSONL)
        self.csv_path = os.path.join(run_dir, rd.METRICS_CSV)
        self.columns: Optional[List[str]] = None
        if truncate_to_call is not None:
            truncate_metrics(run_dir, truncate_to_call)
        if os.path.exists(self.csv_path):
            with open(self.csv_path) as f:
                header = f.readline().strip()
            self.columns = header.split(",") if header else None
        self.writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(os.path.join(run_dir, rd.TENSORBOARD))

    def write(self, record: Dict[str, Any]) -> None:
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(record, default=_json_default) + "\n")
        scalars = {k: v for k, v in record.items() if _scalar(v)}
        new_file = self.columns is None
        if new_file:
            self.columns = list(scalars)
        with open(self.csv_path, "a", newline="") as f:
            w = csv.writer(f)
            if new_file:
                w.writerow(self.columns)
            w.writerow([scalars.get(c, "") for c in self.columns])
        if self.writer is not None:
            step = int(record.get("env_steps", 0))
            for k, v in scalars.items():
                if k not in ("env_steps", "call") and math.isfinite(v):
                    self.writer.add_scalar(k, v, step)
            for k, v in record.items():
                if isinstance(v, dict):
                    for name, x in v.items():
                        if _scalar(x) and math.isfinite(x):
                            self.writer.add_scalar(f"{k}/{name}", x, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _json_default(x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _parse_jsonl(path: str) -> List[Dict[str, Any]]:
    """The records of a JSONL file, skipping lines that do not parse (a line torn by a crash
    mid-write) or are not records."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path, errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def read_metrics(run_dir: str) -> List[Dict[str, Any]]:
    """The records of ``metrics.jsonl`` (a torn or garbled line is skipped)."""
    return _parse_jsonl(os.path.join(run_dir, rd.METRICS_JSONL))


def truncate_metrics(run_dir: str, call: int) -> None:
    """Keep the records of calls ``1..call`` (once each, the first copy) in ``metrics.jsonl``
    and ``metrics.csv``, dropping later calls and torn lines; both files are rewritten
    atomically."""
    jsonl = os.path.join(run_dir, rd.METRICS_JSONL)
    if os.path.exists(jsonl):
        seen, kept = set(), []
        for r in _parse_jsonl(jsonl):
            c = r.get("call")
            if isinstance(c, int) and c <= call and c not in seen:
                seen.add(c)
                kept.append(json.dumps(r, default=_json_default) + "\n")
        rd.atomic_write(jsonl, "".join(kept))
    path = os.path.join(run_dir, rd.METRICS_CSV)
    if os.path.exists(path):
        with open(path, newline="", errors="replace") as f:
            rows = list(csv.reader(f))
        header = rows[0] if rows else []
        out = io.StringIO()
        w = csv.writer(out)
        if header and "call" in header:
            i, seen = header.index("call"), set()
            w.writerow(header)
            for row in rows[1:]:
                try:
                    c = int(float(row[i]))
                except (IndexError, ValueError):
                    continue
                if len(row) == len(header) and c <= call and c not in seen:
                    seen.add(c)
                    w.writerow(row)
        rd.atomic_write(path, out.getvalue())


def plot_learning_curves(run_dir: str, path: Optional[str] = None) -> Optional[str]:
    """Return, success rate (per seed, and per curriculum program) and entropy against env
    steps, as a PNG in the run directory. Returns its path (None without metrics)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    if not records:
        return None
    steps = [r["env_steps"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ax = axes[0]
    ax.plot(steps, [r.get("return", math.nan) for r in records], color="C0")
    ax.set_title("episode return (whole task)")
    ax = axes[1]
    per_seed = [r.get("success_per_seed") for r in records]
    if per_seed[0] and len(per_seed[0]) > 1:
        for s in range(len(per_seed[0])):
            ax.plot(steps, [p[s] if p else math.nan for p in per_seed], lw=0.8, alpha=0.5,
                    label=f"seed {s}")
    ax.plot(steps, [r.get("success", math.nan) for r in records], color="k", lw=1.8,
            label="mean")
    programs = records[-1].get("program_success") or {}
    if len(programs) > 1:
        for name in programs:
            ax.plot(steps, [(r.get("program_success") or {}).get(name, math.nan)
                            for r in records], lw=1, ls="--", label=name)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("success rate")
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[2]
    ax.plot(steps, [r.get("entropy", math.nan) for r in records], color="C2")
    ax.set_title("policy entropy")
    for ax in axes:
        ax.set_xlabel("env steps (per seed)")
        ax.grid(alpha=0.3)
    config_env = records[-1].get("env", "")
    fig.suptitle(f"{config_env}  {os.path.basename(os.path.abspath(run_dir))}", fontsize=9)
    fig.tight_layout()
    path = path or os.path.join(run_dir, rd.CURVES)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
