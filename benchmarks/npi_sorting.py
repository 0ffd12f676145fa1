"""NPI bubble sort: trained on lengths 2 to 20 (64 traces per length), tested up to 200.

The paper (Reed & de Freitas 2016, Fig. 6) trains on 64 traces per length 2-20 (1,216 in
all): NPI sorts up to length 60 and then fails, which the authors read as a counting failure
(sweeps take the wrong number of steps); a seq2seq LSTM given the same examples fails beyond
length 25. Two translations of the traces are trained here (``npigym.agents.npi.data``):

- ``auto``: NPI's end bit on a program's last call, except where the traces show the last call
  looks like any other (BUBBLESORT's last ``PTR 3 RIGHT``, RESET's last LSHIFT): those frames
  end with an explicit RETURN decision taken when the condition is seen (pointer 3 at the end,
  pointers 1 and 2 at the start);
- ``call``: NPI's end bit on every program's last call, as in the paper: BUBBLESORT and RESET
  must count their iterations in the LSTM state.

For every failed episode the interpreter records the first program that returned with its
postcondition failing: where the execution went wrong.

Usage::

    .venv/bin/python benchmarks/npi_sorting.py                       # ~1 h on 2 busy cores
    .venv/bin/python benchmarks/npi_sorting.py --settings auto --lengths 20,60,200
"""

from __future__ import annotations

import argparse
import os
import time

import npi_common as common

TRAIN_LENGTHS = range(2, 21)
LENGTHS = "2,3,5,10,15,20,25,30,40,60,80,100,150,200"
PAPER = "NPI (paper, Fig. 6): 100 % up to about 60, then fails; seq2seq fails beyond 25"


def episodes(length: int) -> int:
    """Fewer episodes at long lengths: a length-200 sort is ~475,000 decisions."""
    return 64 if length <= 60 else 32 if length <= 100 else 16


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs-root", default="out/npi_bench")
    p.add_argument("--settings", default="auto,call")
    p.add_argument("--updates", type=int, default=6000)
    p.add_argument("--lengths", default=LENGTHS, help="evaluation lengths of the auto setting")
    p.add_argument("--call-lengths", default="2,3,5,10,15,20,25,30,40,60,100",
                   help="evaluation lengths of the call setting (its failures run to the step "
                        "limit, which is slow at long lengths)")
    p.add_argument("--call-updates", type=int, default=None,
                   help="updates of the call setting (default: --updates)")
    p.add_argument("--per-length", type=int, default=64)
    p.add_argument("--retrain", action="store_true")
    args = p.parse_args()
    settings = args.settings.split(",")
    os.makedirs(args.runs_root, exist_ok=True)

    files, collect_s = [], 0.0
    for n in TRAIN_LENGTHS:
        path = os.path.join(args.runs_root, f"sorting_len{n}_{args.per_length}.npz")
        collect_s += common.collect(path, "Sorting-v0", args.per_length, seed=n,
                                    min_length=n, max_length=n)
        files.append(path)

    spec = {"env_id": "Sorting-v0", "env_kwargs": {}}
    results, metas, configs, lengths = {}, {}, {}, {}
    for setting in settings:
        updates = args.call_updates if setting == "call" and args.call_updates else args.updates
        config = common.run_config(files, num_updates=updates, end_mode=setting)
        run_dir = os.path.join(args.runs_root, f"sorting_{setting}_{args.per_length}")
        metas[setting] = common.train(config, run_dir, args.retrain)
        configs[setting] = config
        text = args.lengths if setting == "auto" else args.call_lengths
        lengths[setting] = [int(x) for x in text.split(",")]
        start = time.perf_counter()
        results[setting] = common.evaluate(run_dir, spec, lengths[setting],
                                           {n: episodes(n) for n in lengths[setting]})
        metas[setting]["eval_s"] = round(time.perf_counter() - start, 1)

    all_lengths = sorted({n for s in settings for n in lengths[s]})
    by = {s: {r["length"]: r for r in results[s]} for s in settings}
    lines = [f"# NPI bubble sort: length generalisation (trained on lengths 2-20, "
             f"{args.per_length} traces per length)", "",
             f"{PAPER}.", "",
             "Success = BUBBLESORT returns with the array sorted and pointer 3 at the end; "
             "greedy interpreter (alpha = 0.5), the env's default step limit (twice the "
             "expert's worst case). "
             "`auto`: explicit RETURN where a loop's exit is only visible after its last call "
             "(BUBBLESORT, RESET), NPI's end bit elsewhere; `call`: NPI's end bit everywhere.",
             "", "| length | " + " | ".join(f"{s}: success | {s}: first failing program"
                                            for s in settings)
             + " | episodes | expert decisions | eval s (" + settings[0] + ") |",
             "|---|" + "---|---|" * len(settings) + "---|---|---|"]
    for n in all_lengths:
        cells = []
        for s in settings:
            r = by[s].get(n)
            cells += ([f"{r['success'] * 100:.1f} %", common.failures(r)] if r else ["", ""])
        r0 = by[settings[0]].get(n) or next(by[s][n] for s in settings if n in by[s])
        m = n - 1
        lines.append(f"| {n} | " + " | ".join(cells)
                     + f" | {r0['episodes']} | {12 * m * m + 5 * m + 1:,} + swaps | "
                     f"{r0['seconds']:.0f} |")
    lines += ["", "## Training", ""]
    for s in settings:
        lines.append(f"- {s}: {common.training_line(metas[s])}; evaluation "
                     f"{metas[s]['eval_s']:.0f} s.")
        lines.append(f"  End modes: {metas[s]['end_modes']['sorting']}.")
    lines += [f"- trace collection: {collect_s:.0f} s (0 when the files existed).", "",
              f"Config (auto): {common.config_line(configs[settings[0]])}", ""]
    common.write("sorting", "\n".join(lines) + "\n",
                 {"results": results, "training": metas,
                  "configs": {s: common.npi_runs.config_to_dict(c) for s, c in configs.items()}})


if __name__ == "__main__":
    main()
