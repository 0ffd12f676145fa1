"""Sweeps: one vmapped program vs the same trials as sequential `npigym train` runs, the Ray
backend on this machine, and a sweep killed twice then resumed.

    python benchmarks/sweep.py                      # every part, then the report
    python benchmarks/sweep.py --parts vmapped,sequential --budget 163840
    python benchmarks/sweep.py --parts report       # the table from the parts already run

The sweep: `addition-macro` (5 digits), learning rate in {3e-4, 1e-3, 3e-3, 1e-2} x seeds 0-4 =
20 trials of `--budget` env steps each, 5 updates per host call (so a kill can land mid-way).
Every part runs its commands as subprocesses, as a user would, and times them from the outside
(process start, compile, training, writing; the final evaluation is off everywhere). Each part's
figures go to `benchmarks/results/sweep.json` when it ends, so a part interrupted loses only
itself; the report (`benchmarks/results/sweep.md`) compares parts of the same session.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
PARTS_FILE = os.path.join(RESULTS, "sweep.json")
REPORT_FILE = os.path.join(RESULTS, "sweep.md")
NPIGYM = [sys.executable, "-m", "npigym.cli"]
LEARNING_RATES = [3e-4, 1e-3, 3e-3, 1e-2]
SEEDS = [0, 1, 2, 3, 4]


def spec(budget: int) -> Dict[str, Any]:
    return {"name": "addition-lr", "base": "addition-macro", "overrides": ["updates_per_call=5"],
            "axes": {"learning_rate": LEARNING_RATES}, "seeds": SEEDS,
            "budget": {"total_env_steps": budget}, "checkpoint_every": 1,
            "metric": {"name": "success", "mode": "max", "last": 3}}


def load_parts() -> Dict[str, Any]:
    if os.path.exists(PARTS_FILE):
        with open(PARTS_FILE) as f:
            return json.load(f)
    return {}


def save_part(name: str, record: Dict[str, Any]) -> None:
    parts = load_parts()
    parts[name] = {**record, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "load_after": os.getloadavg()[0]}
    with open(PARTS_FILE + ".tmp", "w") as f:
        json.dump(parts, f, indent=1)
    os.replace(PARTS_FILE + ".tmp", PARTS_FILE)


def write_spec(work: str, budget: int) -> str:
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "addition-lr.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(spec(budget), f)
    return path


def finals(sweep_dir: str) -> Dict[str, float]:
    with open(os.path.join(sweep_dir, "index.json")) as f:
        return {k: r.get("value") for k, r in json.load(f)["trials"].items()}


def run(cmd: List[str], **kw: Any) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, **kw)
    return time.perf_counter() - t0


def part_vmapped(work: str, budget: int) -> None:
    path = os.path.join(work, "vmapped")
    shutil.rmtree(path, ignore_errors=True)
    seconds = run([*NPIGYM, "sweep", write_spec(work, budget), "--dir", path, "--quiet",
                   "--no-report"], stdout=subprocess.DEVNULL)
    save_part("vmapped", {"seconds": seconds, "finals": finals(path), "budget": budget,
                          "command": f"npigym sweep addition-lr.yaml --dir {path}"})
    print(f"vmapped: {seconds:.0f} s")


def part_sequential(work: str, budget: int) -> None:
    """The same 20 trials as 20 `npigym train` runs, one after the other."""
    root = os.path.join(work, "sequential")
    shutil.rmtree(root, ignore_errors=True)
    per_trial, values = {}, {}
    from npigym.sweeps.runner import final_metric
    from npigym.sweeps.spec import Metric

    for lr in LEARNING_RATES:
        for seed in SEEDS:
            name = f"learning_rate={lr:.3g}-s{seed}"
            run_dir = os.path.join(root, name)
            per_trial[name] = run([*NPIGYM, "train", "--config", "addition-macro",
                                   f"learning_rate={lr}", f"seed={seed}", "updates_per_call=5",
                                   f"total_env_steps={budget}", "--run-dir", run_dir,
                                   "--no-eval", "--quiet"], stdout=subprocess.DEVNULL)
            values[name] = final_metric(run_dir, Metric("success", "max", 3))["value"]
            print(f"sequential {name}: {per_trial[name]:.0f} s", flush=True)
    save_part("sequential", {"seconds": sum(per_trial.values()), "per_trial": per_trial,
                             "finals": values, "budget": budget,
                             "command": "npigym train --config addition-macro learning_rate=LR "
                                        f"seed=S updates_per_call=5 total_env_steps={budget} "
                                        "--no-eval --quiet  (x 20)"})


def part_ray(work: str, budget: int) -> None:
    path = os.path.join(work, "ray")
    shutil.rmtree(path, ignore_errors=True)
    seconds = run([*NPIGYM, "sweep", write_spec(work, budget), "--dir", path, "--backend",
                   "ray", "--quiet", "--no-report"], stdout=subprocess.DEVNULL)
    save_part("ray", {"seconds": seconds, "finals": finals(path), "budget": budget,
                      "cpus": os.cpu_count(),
                      "command": f"npigym sweep addition-lr.yaml --dir {path} --backend ray"})
    print(f"ray: {seconds:.0f} s")


def _checkpoints(path: str) -> int:
    """The newest group checkpoint's call (0: none yet)."""
    groups = os.path.join(path, "groups")
    best = 0
    try:
        for g in os.listdir(groups):
            for d in os.listdir(os.path.join(groups, g, "checkpoints")):
                if d.isdigit():
                    best = max(best, int(d))
    except OSError:
        pass
    return best


def part_resume(work: str, budget: int, seed: int = 0) -> None:
    """Kill -9 the sweep twice at random calls, resume with the same command each time."""
    path = os.path.join(work, "resumed")
    shutil.rmtree(path, ignore_errors=True)
    cmd = [*NPIGYM, "sweep", write_spec(work, budget), "--dir", path, "--quiet", "--no-report"]
    calls = math.ceil(budget / (128 * 32 * 5))
    rng = random.Random(seed)
    kills, t0 = [], time.perf_counter()
    for low, high in ((1, max(1, calls // 2)), (calls // 2 + 1, max(calls // 2 + 1, calls - 1))):
        target = rng.randint(low, high)
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        while proc.poll() is None and _checkpoints(path) < target:
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append({"after_checkpoint": _checkpoints(path), "target": target})
        print(f"resume: killed at checkpoint {kills[-1]['after_checkpoint']}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    reruns = sum(len(open(os.path.join(path, "trials", t, "metrics.jsonl")).readlines())
                 for t in os.listdir(os.path.join(path, "trials")))
    save_part("resume", {"seconds": seconds, "finals": finals(path), "kills": kills,
                         "records": reruns, "budget": budget, "calls": calls})


def report() -> str:
    parts = load_parts()
    lines = ["# Sweeps: one vmapped program vs sequential runs vs Ray, and resuming", ""]
    v, s = parts.get("vmapped"), parts.get("sequential")
    r, k = parts.get("ray"), parts.get("resume")
    lines += [f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other jobs "
              "(wall times are noisy; the parts ran one after the other in one session, load "
              "averages below). Command: `python benchmarks/sweep.py`.", "",
              "The sweep: `addition-macro` (Addition-v0, 5 digits, macro posing), learning rate "
              "in {3e-4, 1e-3, 3e-3, 1e-2} x seeds 0-4 = 20 trials, "
              f"{(v or s or {}).get('budget', 0):,} env steps each (5 updates per call); "
              "final metric = training success over the last 3 calls. Times are from outside "
              "the process: start, compile, training, writing.", "",
              "| backend | wall s | vs sequential | load average after | command |",
              "|---|---|---|---|---|"]
    base = s["seconds"] if s else None
    for name, p in (("20 sequential `npigym train` runs", s), ("`npigym sweep` (vmapped)", v),
                    ("`npigym sweep --backend ray`", r)):
        if p:
            ratio = f"{base / p['seconds']:.1f}x faster" if base and p is not s else "1"
            lines.append(f"| {name} | {p['seconds']:.0f} | {ratio} | {p['load_after']:.1f} | "
                         f"`{p['command']}` |")
    if v and s:
        diffs = [abs(v["finals"][t] - s["finals"][t]) for t in v["finals"]
                 if t in s["finals"] and v["finals"][t] is not None]
        lines += ["", f"Vmapped vs alone, final success per trial: max |difference| "
                      f"{max(diffs):.2e} over {len(diffs)} trials (float tolerance: XLA batches "
                      "the vmapped program's arithmetic differently)."]
    if v and r:
        diffs = [abs(v["finals"][t] - r["finals"][t]) for t in v["finals"]
                 if r["finals"].get(t) is not None]
        lines += [f"Ray vs vmapped: max |difference| {max(diffs):.2e} over {len(diffs)} trials; "
                  f"Ray's overhead vs the local backend: {r['seconds'] / v['seconds']:.1f}x the "
                  f"wall time (each Ray trial is its own process and compiles its own program; "
                  f"{r.get('cpus')} CPUs, one per trial)."]
    if k and v:
        same = all(k["finals"][t] == v["finals"][t] or (
            k["finals"][t] is not None and v["finals"][t] is not None
            and abs(k["finals"][t] - v["finals"][t]) < 1e-9) for t in v["finals"])
        lines += ["", "## Killed twice, resumed", "",
                  f"`kill -9` after checkpoints {[x['after_checkpoint'] for x in k['kills']]} "
                  f"of {k['calls']} calls, then the same command until done: "
                  f"{k['records']} metric records for 20 trials x {k['calls']} calls "
                  f"(no call logged twice or lost: {k['records'] == 20 * k['calls']}); "
                  f"final table identical to the uninterrupted sweep's: {same}."]
    text = "\n".join(lines) + "\n"
    with open(REPORT_FILE, "w") as f:
        f.write(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="vmapped,sequential,resume,ray,report")
    p.add_argument("--budget", type=int, default=163840, help="env steps per trial")
    p.add_argument("--work", default=os.path.join(ROOT, "out", "bench_sweep"))
    args = p.parse_args()
    for part in args.parts.split(","):
        if part == "report":
            print(report())
        else:
            {"vmapped": part_vmapped, "sequential": part_sequential, "ray": part_ray,
             "resume": part_resume}[part](args.work, args.budget)


if __name__ == "__main__":
    main()
