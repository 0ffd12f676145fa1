"""NPI canonicalization of 3-D cars: seen against unseen models.

The paper (Reed & de Freitas 2016, Table 1) reports 89.5 % on seen and 88.7 % on unseen CAD
car models (single task), for trajectories of at most 4 steps, with a CNN encoder trained from
scratch on 128 x 128 renders; the starts are azimuth -75..75 and elevation 0..60 degrees, the
target azimuth 0 and elevation 15. Here the cars are npigym's procedurally generated ones
(``Canonicalize-v0``, seen split; ``Canonicalize-unseen-v0``, held-out models) rendered at
32 x 32. The model trains on expert traces of the seen split and is tested on both splits,
on the training distribution and on its trajectories of at most 4 rotations.

Usage::

    .venv/bin/python benchmarks/npi_canonicalize.py                 # ~30 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import time

import npi_common as common

PAPER = {"seen": "89.5", "unseen": "88.7"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs-root", default="out/npi_bench")
    p.add_argument("--train-episodes", type=int, default=1000)
    p.add_argument("--updates", type=int, default=4000)
    p.add_argument("--episodes", type=int, default=256)
    p.add_argument("--retrain", action="store_true")
    args = p.parse_args()
    os.makedirs(args.runs_root, exist_ok=True)
    path = os.path.join(args.runs_root, f"canonicalize_{args.train_episodes}.npz")
    collect_s = common.collect(path, "Canonicalize-v0", args.train_episodes, seed=0)
    config = common.run_config([path], num_updates=args.updates)
    run_dir = os.path.join(args.runs_root, f"canonicalize_{args.train_episodes}")
    meta = common.train(config, run_dir, args.retrain)

    rows = []
    start = time.perf_counter()
    for split, env_id in (("seen", "Canonicalize-v0"), ("unseen", "Canonicalize-unseen-v0")):
        for label, kwargs in (("all (training distribution)", {}),
                              ("at most 4 rotations", {"max_rotations": 4})):
            spec = {"env_id": env_id, "env_kwargs": kwargs}
            (row,) = common.evaluate(run_dir, spec, [None], args.episodes, batch=64, seed=1)
            rows.append({"split": split, "trajectories": label, **row})
    eval_s = time.perf_counter() - start

    lines = ["# NPI canonicalization: seen and unseen car models", "",
             "Success = GOTO returns with the camera at the target pose; greedy interpreter "
             "(alpha = 0.5), the env's default step limit.", "",
             "| split | trajectories | paper (CAD cars, <= 4 steps) | ours: success | "
             "episodes | mean decisions | first failing program (failed episodes) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        paper = PAPER[r["split"]] + " %" if "4" in r["trajectories"] else "-"
        lines.append(f"| {r['split']} | {r['trajectories']} | {paper} | "
                     f"{r['success'] * 100:.1f} % | {r['episodes']} | {r['steps']:.1f} | "
                     f"{common.failures(r)} |")
    lines += ["", "## Training", "",
              f"- {common.training_line(meta)}; trace collection {collect_s:.0f} s (0 when "
              f"the file existed); evaluation {eval_s:.0f} s.",
              f"- End modes: {meta['end_modes']['canonicalize']} (LGOTO and the others put "
              "NPI's end bit on the rotation that reaches the target: the CNN must see it "
              "coming one step ahead).", "",
              f"Config: {common.config_line(config)}", ""]
    common.write("canonicalize", "\n".join(lines) + "\n",
                 {"results": rows, "training": meta, "eval_s": eval_s})


if __name__ == "__main__":
    main()
