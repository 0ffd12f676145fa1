"""One NPI for Addition, Sorting and Canonicalize, then MAX added on the frozen core.

The paper's Table 1 (Reed & de Freitas 2016): per-sequence accuracy of single-task NPIs, of
one multi-task NPI, and of the multi-task NPI after MAX was added by training only its new
program memory rows (section 4.3: MAX -> BUBBLESORT, RJMP; RJMP -> RSHIFT):

| task | single | multi | + MAX |
|---|---|---|---|
| addition (10 digits) | 100.0 | 97.0 | 97.0 |
| sorting (length 5) | 100.0 | 100.0 | 100.0 |
| cars, seen models (<= 4 steps) | 89.5 | 91.4 | 91.4 |
| cars, unseen models | 88.7 | 89.9 | 89.9 |
| MAX | - | - | 100.0 |

Here: one core and one program memory whose rows are the union of the three libraries by name
(LSHIFT, RSHIFT, MOVE_PTR and RETURN are shared rows), one encoder per task, trained on the
single-task benchmarks' trace files (addition: 640 episodes of 1-20 digits; sorting: 64 per
length 2-20; cars: 1,000 episodes); each update takes a batch of every task. Then MAX: traces
of ``Max-v0`` posed hierarchically (BUBBLESORT's whole subtree is in them, so the new keys learn
not to win where the old programs should), only the MAX and RJMP memory rows trained. The
single-task column re-evaluates the single-task benchmarks' runs when they exist.

Usage (after npi_addition.py, npi_sorting.py and npi_canonicalize.py made their trace files)::

    .venv/bin/python benchmarks/npi_multitask.py                    # ~1 h on 2 busy cores
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Dict, List

import npi_common as common

from npigym.experiments import npi_runs

PAPER = {"addition": (100.0, 97.0, 97.0), "sorting": (100.0, 100.0, 100.0),
         "cars, seen": (89.5, 91.4, 91.4), "cars, unseen": (88.7, 89.9, 89.9),
         "MAX": (None, None, 100.0)}
# The Table 1 protocol, and a longer size per task for generalisation.
CHECKS = [
    ("addition", "Addition-v0", {}, 10, 100), ("addition, 100 digits", "Addition-v0", {}, 100, 64),
    ("sorting", "Sorting-v0", {}, 5, 100), ("sorting, length 20", "Sorting-v0", {}, 20, 64),
    ("cars, seen", "Canonicalize-v0", {"max_rotations": 4}, None, 256),
    ("cars, unseen", "Canonicalize-unseen-v0", {"max_rotations": 4}, None, 256),
]
MAX_CHECKS = [
    ("MAX", "Max-v0", {}, 5, 100), ("MAX, length 20", "Max-v0", {}, 20, 64),
    ("MAX, NPI runs BUBBLESORT too", "Max-v0", {"modes": "hierarchical"}, 5, 100),
]
SINGLE = {"addition": "addition_per-length", "sorting": "sorting_auto_64",
          "cars": "canonicalize_1000"}


def check(run_dir: str, checks) -> Dict[str, Dict[str, Any]]:
    out = {}
    for label, env_id, kwargs, size, episodes in checks:
        (row,) = common.evaluate(run_dir, {"env_id": env_id, "env_kwargs": kwargs}, [size],
                                 episodes, batch=64 if size is None else 32, seed=2)
        out[label] = row
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs-root", default="out/npi_bench")
    p.add_argument("--updates", type=int, default=6000)
    p.add_argument("--max-updates", type=int, default=3000)
    p.add_argument("--max-learning-rate", type=float, default=1e-2,
                   help="Adam's rate for the new memory rows (the frozen core's inputs and "
                        "keys move slowly at 1e-3)")
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--retrain-max", action="store_true", help="retrain only the MAX step")
    args = p.parse_args()
    root = args.runs_root
    files = [os.path.join(root, "addition_per-length.npz"),
             *(os.path.join(root, f"sorting_len{n}_64.npz") for n in range(2, 21)),
             os.path.join(root, "canonicalize_1000.npz")]
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise SystemExit(f"missing trace files {missing}: run npi_addition.py, npi_sorting.py "
                         "and npi_canonicalize.py first (or collect them)")
    max_files = []
    for n in range(2, 11):
        path = os.path.join(root, f"max_hier_len{n}_32.npz")
        common.collect(path, "Max-v0", 32, seed=100 + n, min_length=n, max_length=n,
                       modes="hierarchical")
        max_files.append(path)

    config = common.run_config(files, num_updates=args.updates)
    multi_dir = os.path.join(root, "multitask")
    multi_meta = common.train(config, multi_dir, args.retrain)
    max_config = npi_runs.config_from_dict(
        {"traces": max_files, "base_run": multi_dir, "train_programs": ["MAX", "RJMP"],
         "train": {**common.TRAIN, "num_updates": args.max_updates,
                   "learning_rate": args.max_learning_rate}})
    max_dir = os.path.join(root, "multitask_max")
    max_meta = common.train(max_config, max_dir, args.retrain or args.retrain_max)

    start = time.perf_counter()
    results: Dict[str, Dict[str, Dict[str, Any]]] = {"multi": check(multi_dir, CHECKS),
                                                      "max": check(max_dir, CHECKS + MAX_CHECKS)}
    single: Dict[str, Any] = {}
    for task, name in SINGLE.items():
        run_dir = os.path.join(root, name)
        if npi_runs.is_npi_run(run_dir):
            single.update(check(run_dir, [c for c in CHECKS if c[0].startswith(task)]))
    results["single"] = single
    eval_s = time.perf_counter() - start

    def cell(column: str, label: str) -> str:
        r = results[column].get(label)
        return f"{r['success'] * 100:.1f}" if r else "-"

    lines = ["# One NPI for three tasks, and MAX added on its frozen core (Table 1)", "",
             "Per-sequence success (%), greedy interpreter. Paper columns: single-task / "
             "multi-task / multi-task + MAX.", "",
             "| task | paper single | paper multi | paper +MAX | ours single | ours multi | "
             "ours +MAX |", "|---|---|---|---|---|---|---|"]
    labels: List[str] = [c[0] for c in CHECKS + MAX_CHECKS]
    for label in labels:
        paper = PAPER.get(label, (None, None, None))
        cells = ["-" if x is None else f"{x:.1f}" for x in paper]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {cell('single', label)} | "
                     f"{cell('multi', label)} | {cell('max', label)} |")
    lines += ["", "Where the +MAX model fails (first failing program):", ""]
    for label, r in results["max"].items():
        if r["success"] < 1:
            lines.append(f"- {label}: {common.failures(r)}")
    lines += ["", "## Training", "",
              f"- multi-task: {common.training_line(multi_meta)}.",
              f"- + MAX (only the MAX and RJMP memory rows train): "
              f"{common.training_line(max_meta)}; end modes of the new programs: "
              f"MAX {max_meta['end_modes']['sorting'].get('MAX')}, RJMP "
              f"{max_meta['end_modes']['sorting'].get('RJMP')}.",
              f"- evaluation: {eval_s:.0f} s.", "",
              f"Config (multi-task): {common.config_line(config)}", ""]
    common.write("multitask", "\n".join(lines) + "\n",
                 {"results": results, "training": {"multi": multi_meta, "max": max_meta}})


if __name__ == "__main__":
    main()
