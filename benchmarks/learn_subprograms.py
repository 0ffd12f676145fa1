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
import dataclasses
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
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
    p.add_argument("--keep-best", type=int, default=None, metavar="SIZE",
                   help="at every evaluation point also score each seed on a fixed validation "
                        "set at this size and keep its best params (keep_best); the final "
                        "table is then given for the final and for the kept params (paired)")
    p.add_argument("--best-episodes", type=int, default=100,
                   help="validation instances for --keep-best")
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
    if args.keep_best is not None:
        config = dataclasses.replace(config, keep_best=True, best_size=args.keep_best,
                                     best_episodes=args.best_episodes)
    print(f"{args.env} {args.setting}: {config.env_kwargs}, {args.seeds} seeds, "
          f"{steps_per_call(config):,} env steps per seed per call", flush=True)
    run = train_to_target(config, size, minutes=args.minutes, target=args.target,
                          eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                          min_minutes=args.min_minutes, run_dir=args.run_dir)
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
    best = None
    if run["keeper"] is not None:  # the same instances, played by each seed's kept params
        kept = [select_seed(run["keeper"].params, s) for s in range(args.seeds)]
        print("each seed's best-by-validation params:", flush=True)
        best = {"seeds": run["keeper"].seeds,
                "rows": length_table(config, kept, lengths, args.length_episodes, greedy=True,
                                     progress=True)}
    write_results(args, argv, config, compile_s, train_s, calls * per_call, reached, rows,
                  curve, size, best)
    return 0


def train_to_target(config, size: Optional[int], minutes: float, target: float = 0.99,
                    eval_every: float = 20.0, eval_episodes: int = 200,
                    min_minutes: float = 0.0, run_dir: Optional[str] = None
                    ) -> Dict[str, Any]:
    """Train ``config``'s agent (its seeds side by side, ``jax.vmap``) until every seed's greedy
    policy reaches ``target`` success on ``eval_episodes`` fresh instances of ``size`` (None:
    the task as posed; checked
    every ``eval_every`` s of training), or for ``minutes`` of training.

    With ``config.keep_best``, each evaluation point also scores every seed on the validation
    set (``npigym.experiments.best.BestKeeper``, saved under ``run_dir`` or a temporary
    directory) and keeps its best params.

    Returns ``{"state", "reached", "curve", "compile_s", "train_s", "calls", "per_call",
    "keeper"}``: ``reached[s]`` is ``(env steps, training wall time)`` of seed ``s``'s first
    success (None if never); wall time counts training only (compile included, evaluation
    excluded); ``keeper`` is the ``BestKeeper`` (None without ``keep_best``).
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
    keeper = None
    if config.keep_best:
        from npigym.experiments.best import BestKeeper
        keeper = BestKeeper(config, run_dir or tempfile.mkdtemp(prefix="learn_best_"),
                            jax.eval_shape(init).params)
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
        # Where the env steps went: the episodes that ended in this call, by start program,
        # and those cut by the step limit.
        point["ended_steps"] = pooled["ended_steps"]
        point["truncated_steps"] = pooled["truncated_steps"]
        if "program_success" in pooled and len(config.curriculum) > 1:
            names = env.unwrapped.library.names
            point["program_success"] = {names[i]: round(float(r), 3) for i, r in
                                        enumerate(pooled["program_success"])
                                        if pooled["program_episodes"][i] > 0}
            point["program_steps"] = {names[i]: float(n) for i, n in
                                      enumerate(pooled["program_steps"]) if n > 0}
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
            if keeper is not None:
                point["validation_success"] = keeper.consider(
                    calls, steps, state.params)["validation_success_per_seed"]
            print(f"  {train_s:7.0f} s  {steps:>12,} steps  greedy success at "
                  f"{size or 'the task'}: "
                  f"{' '.join(f'{r:.3f}' for r in rates)}  (training sampled: "
                  f"{' '.join(f'{r:.3f}' for r in point['train_success'])})"
                  + (f" validation at {config.best_size}: "
                     f"{' '.join(f'{r:.3f}' for r in point['validation_success'])}"
                     if "validation_success" in point else "")
                  + (f" per program {point['program_success']}"
                     if "program_success" in point else ""), flush=True)
            if all(r is not None for r in reached) and train_s >= min_minutes * 60:
                curve.append(point)
                break
        curve.append(point)
    if keeper is not None and not (curve and "validation_success" in curve[-1]):
        scores = keeper.consider(calls, calls * per_call, state.params)  # the final params
        if curve:
            curve[-1]["validation_success"] = scores["validation_success_per_seed"]
    return dict(state=state, reached=reached, curve=curve, compile_s=compile_s,
                train_s=train_s, calls=calls, per_call=per_call, keeper=keeper)


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


def step_share_lines(curve: List[Dict[str, Any]]) -> List[str]:
    """A table of where the env steps went between evaluation points (all seeds pooled): the
    share of the ended episodes' steps by start program, and the share in episodes the step
    limit cut."""
    if not curve or "ended_steps" not in curve[0]:
        return []
    programs = sorted({p for point in curve for p in point.get("program_steps", {})})
    lines = ["", "## Where the env steps went (episodes that ended, all seeds pooled)", "",
             "| train s | " + "".join(f"{p} episodes | " for p in programs)
             + "truncated episodes |", "|---|" + "---|" * (len(programs) + 1)]
    span: List[Dict[str, Any]] = []
    for point in curve:
        span.append(point)
        if "eval_success" not in point and point is not curve[-1]:
            continue
        ended = sum(p["ended_steps"] for p in span)
        if ended > 0:
            share = [sum(p.get("program_steps", {}).get(name, 0.0) for p in span) / ended
                     for name in programs]
            cut = sum(p["truncated_steps"] for p in span) / ended
            lines.append(f"| {span[0]['train_s']:.0f}-{point['train_s']:.0f} | "
                         + "".join(f"{x:.0%} | " for x in share) + f"{cut:.0%} |")
        span = []
    return lines


def write_results(args, argv, config, compile_s, train_s, steps, reached, rows, curve, size,
                  best=None):
    name = f"learn_{args.env.split('-')[0].lower()}_{args.setting}"
    out = Path(args.output) if args.output else RESULTS / f"{name}.md"
    if out.suffix != ".md":  # --output names the table; the JSON goes next to it
        out = out.with_name(out.name + ".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {args.env}, {args.setting}: learning to call subprograms from reward alone", ""]
    shown = {name: getattr(config, name) for name in (
        "env_kwargs", "train_env_kwargs", "curriculum", "curriculum_max_skip",
        "curriculum_max_forced", "curriculum_unlock", "curriculum_starts")}
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
    if best is not None:
        kept = ", ".join(f"seed {b['seed']}: {b['env_steps']:,.0f} steps ({b['success']:.3f})"
                         for b in best["seeds"])
        lines += [format_table(best["rows"], f"each seed's best params by validation success "
                                             f"at size {config.best_size} "
                                             f"({config.best_episodes} instances; {kept}), "
                                             "on the same instances as the table above")]
    lines += ["## Learning curve (greedy success at the evaluation points)",
              "", "| train s | env steps | " + " | ".join(f"seed {config.seed + s}" for s in
                                                          range(args.seeds)) + " |",
              "|---|---|" + "---|" * args.seeds]
    for point in curve:
        if "eval_success" in point:
            lines.append(f"| {point['train_s']:.0f} | {point['env_steps']:,} | "
                         + " | ".join(f"{r:.3f}" for r in point["eval_success"]) + " |")
    lines += step_share_lines(curve)
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
                   "train_s": train_s, "steps": steps, "best": best}, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
