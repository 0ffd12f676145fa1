"""NPI sample complexity: bubble sort at length 20 trained on 1, 2, 4, ... 64 traces.

The paper (Reed & de Freitas 2016, Fig. 5) fixes the length at 20 and varies the number of
training traces: NPI starts to learn with 2 examples and is near perfect with 8; a seq2seq
LSTM needs 64 to start and more than 250 to sort well. Each model here trains for the same
number of updates on the first ``n`` of 64 expert traces and is tested on 64 fresh arrays of
length 20.

Usage::

    .venv/bin/python benchmarks/npi_sample_complexity.py                  # ~40 min, 2 cores
    .venv/bin/python benchmarks/npi_sample_complexity.py --counts 1,2,8 --updates 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import npi_common as common
import numpy as np

from npigym import traces

PAPER = {1: "-", 2: "starts learning", 8: "near perfect", 64: "(seq2seq starts here)"}


def first_episodes(data: traces.Traces, n: int) -> traces.Traces:
    """The first ``n`` episodes of ``data``."""
    rows = slice(0, int(np.sum(data.lengths[:n])))
    return dataclasses.replace(
        data, lengths=data.lengths[:n], success=data.success[:n],
        observation={k: (v[rows] if not isinstance(v, dict) else
                         {kk: vv[rows] for kk, vv in v.items()})
                     for k, v in data.observation.items()},
        **{k: getattr(data, k)[rows] for k in traces.ROW_FIELDS})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs-root", default="out/npi_bench")
    p.add_argument("--counts", default="1,2,4,8,16,32,64")
    p.add_argument("--updates", type=int, default=2000)
    p.add_argument("--length", type=int, default=20)
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--retrain", action="store_true")
    args = p.parse_args()
    counts = [int(x) for x in args.counts.split(",")]
    os.makedirs(args.runs_root, exist_ok=True)
    full = os.path.join(args.runs_root, f"sorting_len{args.length}_64.npz")
    common.collect(full, "Sorting-v0", 64, seed=args.length, min_length=args.length,
                   max_length=args.length)
    data = traces.load(full)

    spec = {"env_id": "Sorting-v0", "env_kwargs": {}}
    rows, metas = [], {}
    for n in counts:
        path = os.path.join(args.runs_root, f"sorting_len{args.length}_first{n}.npz")
        if not os.path.exists(path):
            traces.save(first_episodes(data, n), path)
        config = common.run_config([path], num_updates=args.updates)
        run_dir = os.path.join(args.runs_root, f"sample_complexity_{args.length}_{n}")
        metas[n] = common.train(config, run_dir, args.retrain)
        (row,) = common.evaluate(run_dir, spec, [args.length], args.episodes, seed=1)
        rows.append({"traces": n, **row})

    lines = [f"# NPI sample complexity: bubble sort at length {args.length}", "",
             "The paper's Fig. 5: NPI starts learning with 2 traces and is near perfect with 8; "
             "seq2seq needs 64 to start and over 250 to sort well.", "",
             "| training traces | paper (NPI) | ours: success | first failing program "
             "(failed episodes) | end modes | training s |", "|---|---|---|---|---|---|"]
    for r in rows:
        n = r["traces"]
        modes = metas[n]["end_modes"]["sorting"]
        returning = ", ".join(k for k, v in sorted(modes.items()) if v == "return") or "none"
        lines.append(f"| {n} | {PAPER.get(n, '')} | {r['success'] * 100:.1f} % | "
                     f"{common.failures(r)} | explicit RETURN: {returning} | "
                     f"{metas[n]['training']['wall_time']:.0f} |")
    lines += ["", f"Each: {args.updates:,} updates, tested on {args.episodes} fresh arrays "
                  f"of length {args.length} (digits 0-9).", "",
              f"Config: {common.config_line(config)}", ""]
    common.write("sample_complexity", "\n".join(lines) + "\n",
                 {"results": rows, "training": metas})


if __name__ == "__main__":
    main()
