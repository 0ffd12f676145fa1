"""Where a training update's time goes, for the hierarchical presets (issue 31).

For a preset (default ``addition-hierarchical``), at several splits of the same batch
(``num_envs x rollout_length``), in one process so the ratios compare on this noisy CPU:

1. **env only**: the preset's training env (curriculum wrappers included) stepped with random
   valid actions in a jitted ``lax.scan``, as many steps as one update's rollout;
2. **rollout**: the trainer's own rollout (env + the acting network + the truncation
   bootstrap + the subtree reward);
3. **loss + update**: the loss, its gradient and the optimizer step on a fixed rollout;
4. **train call**: ``updates_per_call`` whole updates (``lax.scan``), of one agent;
5. **as training runs it**: the same call vmapped over ``--seeds`` seeds
   (``npigym.experiments.train.init_fns``: training always vmaps, even one seed), per update
   of every seed. A batch-level branch that becomes a ``select`` under ``vmap`` shows here.

With ``--reset-rows``, a second table times the training env's next-episode reset alone
(``reset_after``: with a curriculum, the expert's prefix), vmapped over that many rows with
every curriculum program open: what a reset costs per row at each batch width.

Each is one warm-up call (the compile) then the median of ``--repeats`` timed calls. The
env steps per second of a row are the update's env steps over its median time; the shares
say what part of a whole update (row 4 per update) each part takes.

Usage::

    .venv/bin/python benchmarks/profile_train_step.py
    .venv/bin/python benchmarks/profile_train_step.py --preset sorting-hierarchical
    .venv/bin/python benchmarks/profile_train_step.py --splits 128x32 --variant '' \
        --variant curriculum_starts=shadow
    .venv/bin/python benchmarks/profile_train_step.py --splits 128x32 --reset-rows 4,16,32,128,1024
    .venv/bin/python benchmarks/profile_train_step.py --quick   # smoke run, meaningless numbers
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import jax
import jax.numpy as jnp

from npigym.experiments.config import PRESETS, load_config
from npigym.experiments.factory import make_agent, make_env
from npigym.experiments.train import init_fns
from npigym.wrappers.auto_reset import reset_after

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput  # a script beside this one

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn: Callable[[], Any], repeats: int) -> Tuple[float, float]:
    """``(first call s, median of repeats s)``, by ``train_throughput.timed``."""
    t = train_throughput.timed(fn, repeats)
    return t["first"], t["median"]


def profile(preset: str, num_envs: int, rollout_length: int, updates_per_call: int,
            repeats: int, overrides: List[str] = (), seeds: int = 1) -> Dict[str, Any]:
    config = load_config(preset, [*overrides, f"a2c.num_envs={num_envs}",
                                  f"a2c.rollout_length={rollout_length}",
                                  f"a2c.updates_per_call={updates_per_call}",
                                  f"num_seeds={seeds}"])
    env = make_env(config)
    _, trainer = make_agent(config, env)
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0))

    rollout = jax.jit(trainer.rollout)
    _, batch = rollout(state.params, state.actor, jax.random.PRNGKey(1))
    update = jax.jit(trainer.update)
    train = jax.jit(trainer.train)

    actor = state.actor
    out: Dict[str, Any] = {"overrides": " ".join(overrides), "num_envs": num_envs,
                           "rollout_length": rollout_length,
                           "steps_per_update": num_envs * rollout_length}
    # The training env (curriculum wrappers included) under the trainer's batched auto-reset,
    # random valid actions: train_throughput's env-only row.
    env_row = train_throughput.env_only(env, num_envs, rollout_length, repeats)
    out["env_first"], out["env"] = env_row["first"], env_row["median"]
    out["rollout_first"], out["rollout"] = timed(
        lambda: rollout(state.params, actor, jax.random.PRNGKey(1)), repeats)
    out["update_first"], out["update"] = timed(
        lambda: update(state.params, state.opt_state, batch, state.hyper), repeats)
    first, call = timed(lambda: train(state), repeats)
    out["train_first"], out["train_call"] = first, call
    out["train"] = call / updates_per_call
    out["env_steps_per_s"] = out["steps_per_update"] / out["train"]
    init_seeds, train_seeds = init_fns(trainer, config)
    states = jax.jit(init_seeds)()
    _, call = timed(lambda: train_seeds(states), repeats)
    out["seeds"] = seeds
    out["train_vmapped"] = call / updates_per_call
    out["vmapped_env_steps_per_s"] = out["steps_per_update"] / out["train_vmapped"]
    return out


def reset_cost(preset: str, rows: int, repeats: int, overrides: List[str] = ()
               ) -> Dict[str, Any]:
    """The training env's next-episode reset vmapped over ``rows`` rows, every curriculum
    program open (as once training has opened them)."""
    env = make_env(load_config(preset, list(overrides)))
    states, _ = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), rows))
    if hasattr(states, "opened"):
        states = states.replace(opened=jnp.ones_like(states.opened))
    reset = jax.jit(jax.vmap(lambda s: reset_after(env, s)))
    _, median = timed(lambda: reset(states), repeats)
    return {"rows": rows, "ms": median * 1e3, "us_per_row": median / rows * 1e6}


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="addition-hierarchical",
                   choices=sorted(k for k in PRESETS if "hierarchical" in k))
    p.add_argument("--splits", default="128x32,256x16,512x8,64x64",
                   help="num_envs x rollout_length pairs (the preset's first)")
    p.add_argument("--variant", action="append", default=None, metavar="OVERRIDES",
                   help="config overrides of a variant (space-separated key=value words; "
                        "repeat the option for several; '' is the preset as it is), each "
                        "profiled at every split (default: the preset alone)")
    p.add_argument("--updates-per-call", type=int, default=20)
    p.add_argument("--seeds", type=int, default=1,
                   help="seeds of the vmapped call, as training runs it (default 1)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--reset-rows", default="", metavar="N,N,...",
                   help="also time the training env's reset alone over these batch widths")
    p.add_argument("--quick", action="store_true", help="tiny sizes; a smoke run")
    p.add_argument("--output", default=None)
    args = p.parse_args(argv)
    splits = [tuple(int(x) for x in s.split("x")) for s in args.splits.split(",")]
    if args.quick:
        splits, args.updates_per_call, args.repeats = [(8, 4)], 2, 1

    start = time.perf_counter()
    rows = []
    for variant in args.variant or [""]:
        for num_envs, length in splits:
            row = profile(args.preset, num_envs, length, args.updates_per_call, args.repeats,
                          variant.split(), args.seeds)
            rows.append(row)
            print(f"{variant or 'the preset'}, {num_envs} x {length}: env "
                  f"{row['env'] * 1e3:.1f} ms, rollout "
                  f"{row['rollout'] * 1e3:.1f} ms, update {row['update'] * 1e3:.1f} ms, "
                  f"per update in training {row['train'] * 1e3:.1f} ms "
                  f"({row['env_steps_per_s']:,.0f} env steps/s); vmapped over "
                  f"{args.seeds} seed(s) {row['vmapped_env_steps_per_s']:,.0f} env steps/s "
                  f"per seed", flush=True)

    resets = []
    for n in [int(x) for x in args.reset_rows.split(",") if x]:
        resets.append(reset_cost(args.preset, n, args.repeats,
                                 (args.variant or [""])[0].split()))
        print(f"reset alone, {n} rows: {resets[-1]['ms']:.2f} ms, "
              f"{resets[-1]['us_per_row']:.1f} us per row", flush=True)

    out = Path(args.output) if args.output else RESULTS / f"profile_{args.preset}.md"
    lines = [f"# Where a training update's time goes: `{args.preset}`", "",
             "One update = a rollout of the batch (env + acting network) and the loss, its "
             "gradient and the optimizer step. Milliseconds are medians of "
             f"{args.repeats} calls; shares are of a whole update as training runs it "
             f"(a `lax.scan` of {args.updates_per_call} updates per call).", "",
             "| overrides | batch (envs x steps) | env only, ms (share) | rollout, ms (share) "
             "| loss + update, ms (share) | whole update, ms | env steps / s | vs the first "
             f"row | as training runs it ({args.seeds} seed(s) vmapped): env steps / s per "
             "seed | vmapped vs alone |", "|---|---|---|---|---|---|---|---|---|---|"]
    base = rows[0]["env_steps_per_s"]
    for r in rows:
        def cell(name, r=r):
            return f"{r[name] * 1e3:.1f} ({r[name] / r['train']:.0%})"
        lines.append(f"| {r['overrides'] or 'the preset'} | {r['num_envs']} x "
                     f"{r['rollout_length']} | {cell('env')} | "
                     f"{cell('rollout')} | {cell('update')} | {r['train'] * 1e3:.1f} | "
                     f"{r['env_steps_per_s']:,.0f} | {r['env_steps_per_s'] / base:.2f}x | "
                     f"{r['vmapped_env_steps_per_s']:,.0f} | "
                     f"{r['vmapped_env_steps_per_s'] / r['env_steps_per_s']:.2f}x |")
    load = os.getloadavg()
    lines += ["", "The rollout includes the env; the parts measured alone need not add up "
                  "to the whole (a scanned update fuses them and skips the host).", ""]
    if resets:
        lines += ["## The next-episode reset alone, by batch width", "",
                  "The training env's `reset_after` (with a curriculum, the expert's prefix up "
                  "to the start call), vmapped over N rows with every curriculum program open"
                  f" (the first variant's config); medians of {args.repeats} calls.", "",
                  "| rows | ms per call | µs per row |", "|---|---|---|",
                  *[f"| {r['rows']:,} | {r['ms']:.2f} | {r['us_per_row']:.1f} |"
                    for r in resets], ""]
    lines += [
              "## Machine", "",
              f"- {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load "
              f"average at the end {load[0]:.1f}; {time.perf_counter() - start:.0f} s in all",
              f"- JAX {jax.__version__}, {jax.default_backend()}; Python "
              f"{platform.python_version()}",
              f"- date {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC", "", "## Command", "",
              "```", ".venv/bin/python benchmarks/profile_train_step.py "
              + " ".join(shlex.quote(a) for a in argv), "```", ""]
    if not args.quick or args.output:
        out.write_text("\n".join(lines))
        print(f"wrote {out}")
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
