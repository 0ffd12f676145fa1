"""Addition-v0 (``addition-macro`` preset): meta-gradient tuned vs fixed hyperparameters.

Env steps and training wall time to 99 % greedy success on fresh 5-digit instances, measured
by ``learn_subprograms.train_to_target`` (the same loop as ``learn_subprograms.py``: greedy
evaluation every ``--eval-every`` s of training, evaluation time not counted, compile counted).
Two arms, run one after the other in the same process, each with its seeds vmapped:

- ``fixed``: the preset as it is (Adam 1e-3 inner, discount 0.99, lambda 0.95, entropy 0.01);
- ``meta-gradient``: the same agent with the debiased one-step meta-gradient
  (``meta.estimator=debiased``) learning discount, lambda and the entropy cost from those
  values, outer discount 1 and lambda 0.95, ``MetaGradientConfig``'s default meta-optimizer.

Env steps count every step taken, so the meta-gradient arm's include its outer rollouts (one
per meta update: twice the steps per update of the fixed arm).

    python benchmarks/meta_addition.py --seeds 2 --minutes 6
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
from learn_subprograms import SETTINGS, train_to_target
from meta_common import command, machine, table, write

from npigym.experiments.config import PRESETS, load_config
from npigym.meta_gradient import LEARNABLE

ARMS = {
    "fixed": [],
    "meta-gradient": ["meta.estimator=debiased",
                      "meta.learn=[discount,gae_lambda,entropy_cost]"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget per arm")
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--eval-every", type=float, default=15.0)
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("overrides", nargs="*", help="config key=value for both arms")
    args = parser.parse_args()
    size = SETTINGS["Addition-v0"]["size"]
    rows, runs = [], {}
    for arm in args.arms.split(","):
        config = load_config(None, [f"num_seeds={args.seeds}", *args.overrides, *ARMS[arm]],
                             base=PRESETS["addition-macro"])
        print(f"== {arm}: {config.meta}", flush=True)
        start = time.perf_counter()
        run = train_to_target(config, size, minutes=args.minutes, target=args.target,
                              eval_every=args.eval_every, eval_episodes=args.eval_episodes)
        hyper = jax.device_get(run["state"].hyper)
        learned = {n: [float(v) for v in np.asarray(getattr(hyper, n))]
                   for n in LEARNABLE if config.meta.enabled and n in config.meta.learn}
        reached = run["reached"]
        steps = [r[0] if r else None for r in reached]
        secs = [r[1] if r else None for r in reached]
        done = [s for s in steps if s is not None]
        row = {"arm": arm,
               "seeds at 99 %": f"{len(done)}/{args.seeds}",
               "env steps to 99 % (per seed)": " / ".join(
                   f"{s:,}" if s else f"> {run['calls'] * run['per_call']:,}" for s in steps),
               "mean env steps": float(np.mean(done)) if len(done) == len(steps) else "n/a",
               "wall s to 99 % (per seed)": " / ".join(
                   f"{t:.0f}" if t else f"> {run['train_s']:.0f}" for t in secs),
               "compile s": round(run["compile_s"]),
               "env steps / s": round(run["calls"] * run["per_call"] * args.seeds
                                      / run["train_s"]),
               "final hyperparameters (per seed)": "; ".join(
                   f"{n} " + " / ".join(f"{v:.4g}" for v in vs) for n, vs in learned.items())
               or "fixed"}
        rows.append(row)
        runs[arm] = dict(config=repr(config.meta), reached=reached, curve=run["curve"],
                         compile_s=run["compile_s"], train_s=run["train_s"],
                         steps=run["calls"] * run["per_call"], learned=learned,
                         total_s=time.perf_counter() - start)
        print(row, flush=True)
    load = os.getloadavg()[0]
    md = ("# Addition-v0 (addition-macro): meta-gradient vs fixed hyperparameters\n\n"
          f"Command: `{command()}`\n\nMachine: {machine()}; load average at the end "
          f"{load:.1f}\n\n"
          f"Same run, arms one after the other, {args.seeds} seeds vmapped per arm, at most "
          f"{args.minutes:g} min of training per arm. Greedy success on {args.eval_episodes} "
          f"fresh {size}-digit instances every {args.eval_every:g} s of training; the first "
          f"evaluation at >= {args.target:.0%} gives the env steps (per seed, every step "
          "taken: the meta-gradient arm's include its outer rollouts, one per update) and the "
          "training wall time (compile included, evaluation excluded; the seeds share the "
          "cores). The meta-gradient arm: debiased one-step meta-gradient (outer discount 1, "
          "outer lambda 0.95) learning discount, lambda and entropy cost from the preset's "
          "0.99 / 0.95 / 0.01, default meta-optimizer (Adam 3e-3, clip 0.1); inner optimizer "
          "Adam 1e-3 in both arms.\n\n"
          + table(rows, list(rows[0])) + "\n")
    print(write("meta_addition", md, dict(args=vars(args), rows=rows, runs=runs)))
    print(md)


if __name__ == "__main__":
    main()
