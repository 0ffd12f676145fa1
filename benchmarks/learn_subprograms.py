"""Learning to call subprograms from reward alone: env steps and wall time to 99 % success,
then length generalisation (success at 5 / 20 / 100 / 1,000 digits), for several seeds.

Settings (``--setting``), each a preset of ``npigym.experiments.config``:

- ``macro``: ADD1 and LSHIFT are builtin macro actions; the agent acts at the top level.
- ``flat``: ADD calls the primitives directly (dense progress reward).
- ``hierarchical``: the agent executes every program, rewarded by each program's postcondition
  (frame-aware credit) with the subprogram curriculum.

Seeds train side by side in one program (``jax.vmap``). Every ``--eval-every`` seconds of
training, each seed's greedy policy plays ``--eval-episodes`` fresh 5-digit instances; the first
time a seed reaches ``--target`` its env steps and training wall time (compile included) are
recorded. Evaluation time is not counted as training time. Training stops when every seed has
reached the target or after ``--minutes``; then every seed is evaluated at ``--lengths`` with the
env's default step limit (it scales with the instance), on the task and on each of the config's
``eval_variants``.

Canonicalize (``--env Canonicalize-v0``, settings ``macro`` and ``hierarchical``) trains on the
seen car models; the target test plays the whole training distribution (every rotation distance,
seen models), and the final table gives success per rotation distance (``--lengths``: the
number of 15-degree moves from start to target, 1-8; ``all``: the training distribution) on
seen and on unseen (held-out) models (the presets' ``eval_variants``).

Usage::

    .venv/bin/python benchmarks/learn_subprograms.py --setting macro --seeds 3 --minutes 4
    .venv/bin/python benchmarks/learn_subprograms.py --setting hierarchical --seeds 2 --minutes 30
    .venv/bin/python benchmarks/learn_subprograms.py --env Sorting-v0 --setting macro \
        --lengths 5,10,20
    .venv/bin/python benchmarks/learn_subprograms.py --env Canonicalize-v0 \
        --setting hierarchical --seeds 3 --minutes 20
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import jax
import numpy as np

from npigym.agents.actor_critic import select_seed, summarize
from npigym.agents.networks import make_network
from npigym.experiments.config import PRESETS, load_config
from npigym.experiments.evaluate import format_table, length_table, make_evaluator
from npigym.experiments.factory import make_agent, make_env
from npigym.experiments.train import init_fns, steps_per_call

RESULTS = Path(__file__).resolve().parent / "results"

# Per env: each setting's preset, keys replaced in it, the evaluation size of the 99 % test
# (None: the task as the preset poses it) and the default sizes of the final table.
SORTING_SIZES = {"min_length": 2, "max_length": 5}
SETTINGS: Dict[str, Dict[str, Any]] = {
    "Addition-v0": {
        "macro": ("addition-macro", {}),
        "flat": ("addition-flat", {}),
        "hierarchical": ("addition-hierarchical", {}),
        "size": 5,
        "lengths": "5,20,100,1000",
    },
    "Sorting-v0": {
        "macro": ("sorting-macro", {}),
        "flat": ("addition-flat", {"env": "Sorting-v0", "env_kwargs": {
            "modes": "flat", "reward": "dense", **SORTING_SIZES}}),
        "hierarchical": ("sorting-hierarchical", {}),
        "size": 5,
        "lengths": "5,20,100,1000",
    },
    "Canonicalize-v0": {
        "macro": ("canonicalize-macro", {}),
        "hierarchical": ("canonicalize-hierarchical", {}),
        "size": None,  # every rotation distance of the training distribution
        "lengths": "all,1,2,3,4,5,6,7,8",
    },
}


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="Addition-v0", choices=sorted(SETTINGS))
    p.add_argument("--setting", default="macro", choices=["macro", "flat", "hierarchical"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--minutes", type=float, default=5.0, help="training time budget")
    p.add_argument("--min-minutes", type=float, default=0.0,
                   help="keep training at least this long after every seed reached the target "
                        "(for the length-generalisation table)")
    p.add_argument("--target", type=float, default=0.99)
    p.add_argument("--eval-every", type=float, default=20.0, help="seconds of training")
    p.add_argument("--eval-episodes", type=int, default=200)
    p.add_argument("--lengths", default=None,
                   help="sizes of the final table, e.g. 5,20,100 ('all': the task as posed); "
                        "default: the env's (5,20,100,1000; Canonicalize: all,1,...,8)")
    p.add_argument("--length-episodes", type=int, default=100)
    p.add_argument("--output", default=None)
    p.add_argument("--run-dir", default=None,
                   help="also save the config and the final training state there as a run "
                        "directory (for npigym eval / play / train --resume)")
    p.add_argument("overrides", nargs="*", help="config key=value overrides")
    args = p.parse_args(argv)

    if args.setting not in SETTINGS[args.env]:
        p.error(f"{args.env} has no {args.setting} setting here")
    preset, replaced = SETTINGS[args.env][args.setting]
    size = SETTINGS[args.env]["size"]
    tree = {**PRESETS[preset], **replaced}
    config = load_config(None, [f"num_seeds={args.seeds}", *args.overrides], base=tree)
    print(f"{args.env} {args.setting}: {config.env_kwargs}, {args.seeds} seeds, "
          f"{steps_per_call(config):,} env steps per seed per call", flush=True)
    run = train_to_target(config, size, minutes=args.minutes, target=args.target,
                          eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                          min_minutes=args.min_minutes)
    state, reached, curve = run["state"], run["reached"], run["curve"]
    compile_s, train_s, calls, per_call = (run["compile_s"], run["train_s"], run["calls"],
                                           run["per_call"])

    if args.run_dir:
        save_run_dir(args.run_dir, config, state, calls, train_s)
    lengths = [None if x.strip() == "all" else int(x)
               for x in (args.lengths or SETTINGS[args.env]["lengths"]).split(",")]
    params = [select_seed(state.params, s) for s in range(args.seeds)]
    rows = length_table(config, params, lengths, args.length_episodes, greedy=True,
                        progress=True)
    for variant in config.eval_variants:
        rows += length_table(config, params, lengths, args.length_episodes, greedy=True,
                             progress=True, variant=variant)
    write_results(args, argv, config, compile_s, train_s, calls * per_call, reached, rows,
                  curve, size)
    return 0


def train_to_target(config, size: Optional[int], minutes: float, target: float = 0.99,
                    eval_every: float = 20.0, eval_episodes: int = 200,
                    min_minutes: float = 0.0) -> Dict[str, Any]:
    """Train ``config``'s agent (its seeds side by side, ``jax.vmap``) until every seed's greedy
    policy reaches ``target`` success on ``eval_episodes`` fresh instances of ``size`` (None:
    the task as posed; checked
    every ``eval_every`` s of training), or for ``minutes`` of training.

    Returns ``{"state", "reached", "curve", "compile_s", "train_s", "calls", "per_call"}``:
    ``reached[s]`` is ``(env steps, training wall time)`` of seed ``s``'s first success (None
    if never); wall time counts training only (compile included, evaluation excluded).
    """
    seeds = config.num_seeds
    env = make_env(config)
    network, trainer = make_agent(config, env)
    init, train_call = init_fns(trainer, config)
    eval_env = make_env(config, size=size, whole_task=True)
    evaluator = make_evaluator(eval_env, make_network(eval_env, config.network),
                               eval_episodes, greedy=True)
    per_call = steps_per_call(config)

    start = time.perf_counter()
    state = jax.jit(init)()
    state, metrics = train_call(state)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - start
    train_s = compile_s
    reached: List[Any] = [None] * seeds
    curve: List[Dict[str, Any]] = []
    last_eval = 0.0
    calls = 1
    while train_s < minutes * 60:
        t0 = time.perf_counter()
        state, metrics = train_call(state)
        metrics = jax.device_get(metrics)
        train_s += time.perf_counter() - t0
        calls += 1
        steps = calls * per_call
        pooled = summarize(metrics)
        point = {"env_steps": steps, "train_s": round(train_s, 1),
                 "train_success": [summarize(select_seed(metrics, s))["success"]
                                   for s in range(seeds)]}
        if "program_success" in pooled and len(config.curriculum) > 1:
            names = env.unwrapped.library.names
            point["program_success"] = {names[i]: round(float(r), 3) for i, r in
                                        enumerate(pooled["program_success"])
                                        if pooled["program_episodes"][i] > 0}
        if train_s - last_eval >= eval_every:
            last_eval = train_s
            rates = []
            for s in range(seeds):
                out = evaluator(select_seed(state.params, s), jax.random.PRNGKey(calls))
                # float64: a float32 mean of 198/200 is 0.98999995, below a 0.99 target.
                rates.append(float(np.mean(np.asarray(out["success"], np.float64))))
                if reached[s] is None and rates[-1] >= target:
                    reached[s] = (steps, train_s)
            point["eval_success"] = rates
            print(f"  {train_s:7.0f} s  {steps:>12,} steps  greedy success at "
                  f"{size or 'the task'}: "
                  f"{' '.join(f'{r:.3f}' for r in rates)}  (training sampled: "
                  f"{' '.join(f'{r:.3f}' for r in point['train_success'])})"
                  + (f" per program {point['program_success']}"
                     if "program_success" in point else ""), flush=True)
            if all(r is not None for r in reached) and train_s >= min_minutes * 60:
                curve.append(point)
                break
        curve.append(point)
    return dict(state=state, reached=reached, curve=curve, compile_s=compile_s,
                train_s=train_s, calls=calls, per_call=per_call)


def save_run_dir(path: str, config, state, calls: int, train_s: float) -> None:
    """A run directory as ``npigym train`` writes it: the config and a checkpoint."""
    from npigym.experiments import run_dir as rd
    from npigym.experiments.config import save_config

    os.makedirs(path, exist_ok=True)
    save_config(config, os.path.join(path, rd.CONFIG))
    checkpointer = rd.Checkpointer(path)
    try:
        checkpointer.save(calls, state, {"calls": calls, "wall_time": train_s})
    finally:
        checkpointer.close()
    print(f"run directory: {path}", flush=True)


def write_results(args, argv, config, compile_s, train_s, steps, reached, rows, curve, size):
    name = f"learn_{args.env.split('-')[0].lower()}_{args.setting}"
    out = Path(args.output) if args.output else RESULTS / f"{name}.md"
    if out.suffix != ".md":  # --output names the table; the JSON goes next to it
        out = out.with_name(out.name + ".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {args.env}, {args.setting}: learning to call subprograms from reward alone", ""]
    shown = {name: getattr(config, name) for name in (
        "env_kwargs", "train_env_kwargs", "curriculum", "curriculum_max_skip",
        "curriculum_max_forced", "curriculum_unlock")}
    shown.update(a2c=dict(config.a2c.__dict__), network=dict(config.network.__dict__))
    lines.append(f"Config: `{json.dumps(shown, default=str)}`")
    lines += ["", f"Compile + first call: {compile_s:.0f} s. Trained {steps:,} env steps per "
                  f"seed in {train_s:.0f} s ({args.seeds} seeds side by side).", "",
              f"## Env steps and training wall time to {args.target:.0%} greedy success at "
              f"{size or 'the training distribution'} (evaluated every "
              f"{args.eval_every:.0f} s on {args.eval_episodes} instances)", "",
              "| seed | env steps | wall time, s |", "|---|---|---|"]
    for s, r in enumerate(reached):
        lines.append(f"| {config.seed + s} | {r[0]:,} | {r[1]:.0f} |" if r else
                     f"| {config.seed + s} | not reached in {steps:,} | not reached in "
                     f"{train_s:.0f} |")
    lines += ["", "Wall time counts training only (compile included; evaluation excluded); "
                  "seeds share the 2 cores, so one seed alone runs about that many times "
                  "faster.", "", "## Success per size (greedy policy, default step limit)", "",
              format_table([r for r in rows if "variant" not in r],
                           f"the task: {config.env} {dict(config.env_kwargs)}"
                           if config.eval_variants else "")]
    for variant, kwargs in config.eval_variants.items():
        lines += [format_table([r for r in rows if r.get("variant") == variant],
                               f"variant {variant}: {dict(kwargs)}")]
    lines += ["## Learning curve (greedy success at the evaluation points)",
              "", "| train s | env steps | " + " | ".join(f"seed {config.seed + s}" for s in
                                                          range(args.seeds)) + " |",
              "|---|---|" + "---|" * args.seeds]
    for point in curve:
        if "eval_success" in point:
            lines.append(f"| {point['train_s']:.0f} | {point['env_steps']:,} | "
                         + " | ".join(f"{r:.3f}" for r in point["eval_success"]) + " |")
    load = os.getloadavg()
    lines += ["", "## Machine", "", f"- {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores; load average at the end {load[0]:.1f}",
              f"- JAX {jax.__version__}, {jax.default_backend()}; Python "
              f"{platform.python_version()}",
              f"- date {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC", "", "## Command", "",
              "```", ".venv/bin/python benchmarks/learn_subprograms.py "
              + " ".join(shlex.quote(a) for a in argv), "```", ""]
    out.write_text("\n".join(lines))
    with open(out.with_suffix(".json"), "w") as f:
        json.dump({"reached": reached, "rows": rows, "curve": curve, "compile_s": compile_s,
                   "train_s": train_s, "steps": steps}, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
