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


GRID_DISCOUNTS = [0.9, 0.97, 0.99, 0.999]
GRID_LAMBDAS = [0.8, 0.95]
SELF_TUNE_SEEDS = [0, 1, 2]


def part_selftune(work: str, budget: int) -> None:
    """Sweep vs self-tuning: a discount x lambda grid (3 seeds) against one debiased
    meta-gradient run (3 seeds) given the grid's total env steps per seed."""
    del budget  # this part's budgets are its own
    per_trial = 491520  # 24 calls of 5 updates x 128 envs x 32 steps
    grid = {"name": "addition-gamma-lambda", "base": "addition-macro",
            "overrides": ["updates_per_call=5"],
            "axes": {"discount": GRID_DISCOUNTS, "gae_lambda": GRID_LAMBDAS},
            "seeds": SELF_TUNE_SEEDS, "budget": {"total_env_steps": per_trial},
            "checkpoint_every": 2, "metric": {"name": "success", "mode": "max", "last": 3}}
    n_configs = len(GRID_DISCOUNTS) * len(GRID_LAMBDAS)
    meta = {"name": "addition-meta", "base": "addition-macro",
            "overrides": ["updates_per_call=5", "meta.estimator=debiased",
                          "meta.learn=[discount,gae_lambda]"],
            "seeds": SELF_TUNE_SEEDS, "budget": {"total_env_steps": per_trial * n_configs},
            "checkpoint_every": 2, "metric": {"name": "success", "mode": "max", "last": 3}}
    out = {}
    for name, raw in (("grid", grid), ("meta", meta)):
        path = os.path.join(work, name)
        shutil.rmtree(path, ignore_errors=True)
        spec_path = os.path.join(work, f"{raw['name']}.yaml")
        os.makedirs(work, exist_ok=True)
        with open(spec_path, "w") as f:
            yaml.safe_dump(raw, f)
        seconds = run([*NPIGYM, "sweep", spec_path, "--dir", path, "--quiet"],
                      stdout=subprocess.DEVNULL)
        out[name] = {"seconds": seconds, "finals": finals(path), "spec": raw,
                     "command": f"npigym sweep {raw['name']}.yaml"}
        print(f"selftune {name}: {seconds:.0f} s", flush=True)
    # The meta run's success when it had used one grid trial's budget, from its own curve.
    from npigym.experiments.logger import read_metrics

    at_trial_budget, hyper = {}, {}
    for trial in os.listdir(os.path.join(work, "meta", "trials")):
        records = read_metrics(os.path.join(work, "meta", "trials", trial))
        upto = [r for r in records if r["env_steps"] <= per_trial][-3:]
        at_trial_budget[trial] = sum(r["success"] for r in upto) / len(upto)
        hyper[trial] = {k: records[-1].get(f"hp_{k}") for k in ("discount", "gae_lambda")}
    out["meta"].update(at_trial_budget=at_trial_budget, final_hyper=hyper,
                       per_trial=per_trial, n_configs=n_configs)
    save_part("selftune", out)


def report() -> str:
    parts = load_parts()
    lines = ["# Sweeps: one vmapped program vs sequential runs vs Ray, and resuming", ""]
    v, s = parts.get("vmapped"), parts.get("sequential")
    r, k = parts.get("ray"), parts.get("resume")
    lines += [f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other jobs "
              "(wall times are noisy; the parts ran one after the other in one session, load "
              "averages below). Command: `python benchmarks/sweep.py`.", "",
              "The sweep (`examples/sweeps/addition-lr.yaml`): `addition-macro` (Addition-v0, "
              "5 digits, macro posing), learning rate "
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
            command = p["command"].replace(ROOT + os.sep, "")
            lines.append(f"| {name} | {p['seconds']:.0f} | {ratio} | {p['load_after']:.1f} | "
                         f"`{command}` |")
    if v and s:
        import statistics

        median = statistics.median(s["per_trial"].values())
        lines += ["", f"Where the time goes: a sequential run takes {median:.0f} s (median), most "
                      "of it starting Python and JAX and compiling the training program; the "
                      f"vmapped sweep starts and compiles once, then trains all 20 trials in one "
                      f"program ({v['seconds'] / 20:.1f} s per trial in all). The ratio grows "
                      "with the number of trials and shrinks with the budget per trial, as "
                      "training comes to dominate."]
        diffs = [abs(v["finals"][t] - s["finals"][t]) for t in v["finals"]
                 if t in s["finals"] and v["finals"][t] is not None]
        lines += ["", f"Vmapped vs alone, final success per trial: max |difference| "
                      f"{max(diffs):.2e} over {len(diffs)} trials (the parameters may differ "
                      "within float tolerance, as XLA batches a vmapped program's arithmetic "
                      "differently; tests/sweeps/test_runner.py checks them)."]
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
    st = parts.get("selftune")
    if st:
        lines += _selftune_section(st)
    text = "\n".join(lines) + "\n"
    with open(REPORT_FILE, "w") as f:
        f.write(text)
    return text


def _selftune_section(st: Dict[str, Any]) -> List[str]:
    import numpy as np

    grid, meta = st["grid"], st["meta"]
    by_config: Dict[str, List[float]] = {}
    for trial, value in grid["finals"].items():
        by_config.setdefault(trial.rsplit("-s", 1)[0], []).append(value)
    means = sorted(((float(np.mean(v)), c) for c, v in by_config.items()), reverse=True)
    best, median = means[0], means[len(means) // 2]
    meta_final = [v for v in meta["finals"].values()]
    meta_early = list(meta["at_trial_budget"].values())
    per_trial, n = meta["per_trial"], meta["n_configs"]
    lines = ["", "## Sweep vs self-tuning", "",
             f"`addition-macro`: a grid of discount {GRID_DISCOUNTS} x lambda {GRID_LAMBDAS}, "
             f"seeds {SELF_TUNE_SEEDS}, {per_trial:,} env steps per trial (one vmapped "
             f"program, {grid['seconds']:.0f} s), against a debiased meta-gradient run "
             f"learning discount and lambda from the preset's 0.99 / 0.95, same seeds, given "
             f"the grid's env steps per seed ({n} x {per_trial:,} = {n * per_trial:,}; every "
             f"step counted, its outer rollouts included; {meta['seconds']:.0f} s). Final "
             "metric: training success over the last 3 calls, mean over seeds.", "",
             "| run | success (mean of 3 seeds) | per seed |", "|---|---|---|"]
    for mean, c in means:
        tag = " (grid best)" if (mean, c) == best else (
            " (grid median)" if (mean, c) == median else "")
        lines.append(f"| grid {c}{tag} | {mean:.3f} | "
                     + " / ".join(f"{v:.3f}" for v in by_config[c]) + " |")
    lines.append(f"| meta-gradient at {per_trial:,} steps (one trial's budget) | "
                 f"{np.mean(meta_early):.3f} | "
                 + " / ".join(f"{v:.3f}" for v in meta_early) + " |")
    lines.append(f"| meta-gradient at {n * per_trial:,} steps (the grid's per seed) | "
                 f"{np.mean(meta_final):.3f} | "
                 + " / ".join(f"{v:.3f}" for v in meta_final) + " |")
    hyper = "; ".join(f"{t}: discount {h['discount']:.4f}, lambda {h['gae_lambda']:.4f}"
                      for t, h in sorted(meta["final_hyper"].items()) if h["discount"])
    lines += ["", "Reading. Lambda matters on this task at this budget (0.95 beats 0.8 at every "
              "discount), discount less (0.9 is worst at lambda 0.95), and the seed most "
              "(seed 2 is below 0.07 in every config). At one trial's budget the meta-gradient "
              f"run is below every grid config ({np.mean(meta_early):.3f}): half of its env "
              "steps are outer rollouts and its hyperparameters have barely moved. Given the "
              "grid's whole budget per seed it solves the task on every seed "
              f"({np.mean(meta_final):.3f}), where the grid has spent the same steps to pick "
              "a config whose agents reach "
              f"{best[0]:.3f}. That is the papers' promise (tune while training instead of "
              "training many times), but on this task it is not evidence that tuning helped: "
              "the preset's fixed hyperparameters also reach 99 % in 0.8-1.3 M steps "
              "(learn_subprograms.md), and the learned values stayed near the preset's. A "
              "task whose best discount is far from the default (Snake, issue 30) is where the "
              "comparison can separate them.",
              "", f"Learned at the end: {hyper}.",
              "Commands: `python benchmarks/sweep.py --parts selftune,report` "
              "(specs written to out/bench_sweep/)."]
    return lines


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
             "resume": part_resume, "selftune": part_selftune}[part](args.work, args.budget)


if __name__ == "__main__":
    main()
