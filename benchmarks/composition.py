"""Does composition pay? Multiplication learned over a learned ADD skill, against learning it all.

Subcommands (each writes its part into ``benchmarks/results/composition.json``; ``report``
assembles ``benchmarks/results/composition.md`` from it):

- ``train --arm ARM``: train Multiplication-v0's agent until every seed's greedy policy reaches
  ``--target`` on fresh instances of ``--size`` (both operands 1..size digits at training,
  size x size at the test), or for ``--minutes``; then its success at ``--lengths``. Arms:
  ``skill`` (ADD is a learned skill, ``--skill REF``: a saved skill or an Addition run dir),
  ``builtin`` (ADD is the Addition expert: the ceiling of ``skill``), ``agent`` (the agent
  executes ADD's programs too, the addition-hierarchical recipe: learning it all), ``flat``
  (MUL calls the primitives). ``--task dot`` trains DotProduct-v0 over a MUL skill instead.
- ``lengths --arm ARM``: the trained arm's greedy success at ``--lengths`` (N x N digits),
  each episode capped in steps (see :func:`length_rows`).
- ``reliability --arm ARM``: the trained policy's episodes, with every skill call's outcome:
  each skill's per-call success next to the composed task's, and whether failed episodes had
  a failed skill call (the skill's fault) or none (the new policy's).
- ``cost --skill REF``: env steps/s of Multiplication at ``--batch`` envs with ADD as the
  learned skill vs as the builtin expert, the expert's MUL calls, alternated in one process.
- ``report``: the Markdown file, headline table first.

Usage::

    .venv/bin/python benchmarks/composition.py train --arm skill --skill runs/add-hier --seeds 3
    .venv/bin/python benchmarks/composition.py train --arm agent --seeds 3 --minutes 20
    .venv/bin/python benchmarks/composition.py reliability --arm skill
    .venv/bin/python benchmarks/composition.py cost --skill runs/add-hier
    .venv/bin/python benchmarks/composition.py report
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learn_subprograms import save_run_dir, train_to_target

from npigym.agents.actor_critic import select_seed
from npigym.agents.networks import make_network
from npigym.experiments.config import load_config
from npigym.experiments.evaluate import make_evaluator
from npigym.experiments.factory import make_env

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = RESULTS / "composition.json"
# arm -> (preset, the program a --skill binds, keys the arm replaces in the preset)
ARMS: Dict[str, Any] = {
    "skill": ("multiplication-macro", "ADD", {}),
    "builtin": ("multiplication-macro", None, {}),
    "agent": ("multiplication-hierarchical", None, {}),
    # ADD agent-executed in the posing the ADD skill was trained in (its ADD1 and LSHIFT the
    # expert's): learning that same ADD inside MUL instead of reusing it.
    "agent-macro": ("multiplication-hierarchical", None, {
        "env_kwargs": {"modes": {"ADD": "agent", "ADD1": "builtin", "LSHIFT": "builtin"},
                       "max_digits": 3, "reward": "dense"},
        "curriculum": {"MUL": 1, "ADD": 1}}),
    "flat": ("multiplication-flat", None, {}),
    "dot": ("dot-product-macro", "MUL", {}),
}


def arm_config(arm: str, seeds: int, skill: Optional[str], overrides: List[str]):
    from npigym.experiments.config import PRESETS

    preset, program, own = ARMS[arm]
    base = {**PRESETS[preset], **own}
    words = [f"num_seeds={seeds}", *overrides]
    if program is not None:
        if not skill:
            raise SystemExit(f"--arm {arm} needs --skill (the {program} skill to bind)")
        words.append(f"skills={json.dumps({program: os.path.abspath(skill)})}")
    return load_config(None, words, base=base)


def _save_part(name: str, part: Dict[str, Any]) -> None:
    """Store one part (a training arm, reliability, cost) in the study's JSON file."""
    parts = json.loads(PARTS.read_text()) if PARTS.exists() else {}
    parts[name] = part
    PARTS.write_text(json.dumps(parts, indent=1))


def cmd_train(args: argparse.Namespace, argv: List[str]) -> None:
    config = arm_config(args.arm, args.seeds, args.skill, args.overrides)
    print(f"{args.arm}: {config.env} {dict(config.env_kwargs)} skills {dict(config.skills)}, "
          f"{args.seeds} seeds", flush=True)
    run = train_to_target(config, args.size, minutes=args.minutes, target=args.target,
                          eval_every=args.eval_every, eval_episodes=args.eval_episodes)
    run_dir = args.run_dir or f"runs/composition-{args.arm}"
    save_run_dir(run_dir, config, run["state"], run["calls"], run["train_s"])
    part = {"arm": args.arm, "env": config.env, "skills": dict(config.skills),
            "size": args.size, "target": args.target, "seeds": args.seeds,
            "reached": run["reached"], "train_s": run["train_s"],
            "compile_s": run["compile_s"], "env_steps": run["calls"] * run["per_call"],
            "rows": [], "curve": run["curve"], "run_dir": run_dir,
            "command": "benchmarks/composition.py " + " ".join(shlex.quote(a) for a in argv)}
    _save_part(f"train-{args.arm}", part)  # before the length table, which may take long
    print(json.dumps({k: part[k] for k in ("reached", "train_s", "env_steps")}), flush=True)
    if args.lengths:
        params = [select_seed(run["state"].params, s) for s in range(args.seeds)]
        part["rows"] = length_rows(config, params, [int(x) for x in args.lengths.split(",")],
                                   args.length_episodes, args.steps_per_digit)
        _save_part(f"train-{args.arm}", part)


def length_rows(config: Any, params: List[Any], sizes: List[int], episodes: int,
                steps_per_digit: int) -> List[Dict[str, Any]]:
    """Greedy success per size and seed, each episode capped at ``steps_per_digit * size +
    100`` agent steps (the expert's MUL needs about 20 per digit): a policy that loops on a
    refused action would otherwise run to the step limit, which grows as the square of the
    size (1.3 M steps at 50 x 50). An episode cut by the cap counts as failed."""
    rows = []
    for size in sizes:
        env = make_env(config, size=size, whole_task=True)
        evaluator = make_evaluator(env, make_network(env, config.network), episodes,
                                   greedy=True, max_steps=steps_per_digit * size + 100)
        for s, p in enumerate(params):
            start = time.perf_counter()
            out = jax.device_get(evaluator(p, jax.random.PRNGKey(10_000 + size)))
            rows.append({"length": size, "seed": config.seed + s, "episodes": episodes,
                         "success": float(np.mean(np.asarray(out["success"], np.float64))),
                         "steps": float(np.mean(out["length"])),
                         "cut": float(np.mean(~np.asarray(out["done"]))),
                         "seconds": round(time.perf_counter() - start, 1)})
            print(f"  size {size}: seed {config.seed + s} success {rows[-1]['success']:.3f} "
                  f"({rows[-1]['seconds']} s)", flush=True)
    return rows


def cmd_lengths(args: argparse.Namespace, argv: List[str]) -> None:
    from npigym.experiments.evaluate import load_run

    part = _load(f"train-{args.arm}")
    if part is None:
        raise SystemExit(f"no trained {args.arm} arm in {PARTS}; run `train --arm {args.arm}`")
    config, _, params, _ = load_run(part["run_dir"])
    part["rows"] = length_rows(config, params, [int(x) for x in args.lengths.split(",")],
                               args.episodes, args.steps_per_digit)
    part["lengths_command"] = ("benchmarks/composition.py "
                               + " ".join(shlex.quote(a) for a in argv))
    _save_part(f"train-{args.arm}", part)


def cmd_continue(args: argparse.Namespace, argv: List[str]) -> None:
    """Train an arm's saved run further (``npigym train --resume``), then test every seed
    greedily at the arm's size; a seed that reaches the target is recorded at the continued
    run's total (its first crossing is not resolved any finer than the continuation)."""
    import contextlib
    import dataclasses
    import io

    from npigym.experiments import run_dir as rd
    from npigym.experiments.config import read_config
    from npigym.experiments.evaluate import load_run
    from npigym.experiments.train import train

    part = _load(f"train-{args.arm}")
    if part is None:
        raise SystemExit(f"no trained {args.arm} arm in {PARTS}; run `train --arm {args.arm}`")
    config = read_config(os.path.join(part["run_dir"], rd.CONFIG))
    with contextlib.redirect_stdout(io.StringIO()):
        train(dataclasses.replace(config, time_limit_s=args.minutes * 60,
                                  total_env_steps=10**12),
              part["run_dir"], resume=True, progress=False, final_eval=False)
    config, _, params, progress = load_run(part["run_dir"])
    env = make_env(config, size=part["size"], whole_task=True)
    evaluator = make_evaluator(env, make_network(env, config.network), args.eval_episodes,
                               greedy=True, max_steps=60 * part["size"] + 100)
    rates = [float(np.mean(np.asarray(evaluator(p, jax.random.PRNGKey(77))["success"],
                                      np.float64))) for p in params]
    with open(os.path.join(part["run_dir"], rd.METRICS_JSONL)) as f:
        last = json.loads(f.readlines()[-1])
    steps, seconds = int(last["env_steps"]), float(last["wall_time"])
    part["env_steps"], part["train_s"] = steps, seconds
    part["reached"] = [r if r else ([steps, seconds] if rate >= part["target"] else None)
                       for r, rate in zip(part["reached"], rates)]
    part.setdefault("continued", []).append({
        "minutes": args.minutes, "env_steps": steps, "train_s": seconds,
        "greedy_success": rates,
        "command": "benchmarks/composition.py " + " ".join(shlex.quote(a) for a in argv)})
    _save_part(f"train-{args.arm}", part)
    print(json.dumps(part["continued"][-1]))


def episode_outcomes(config: Any, params: Any, size: int, episodes: int, seed: int = 7,
                     steps_per_digit: int = 60) -> Dict[str, Any]:
    """Greedy episodes of ``config``'s whole task with every skill call's outcome (each
    episode capped as in :func:`length_rows`)."""
    cap = steps_per_digit * size + 100
    env = make_env(config, size=size, whole_task=True)
    network = make_network(env, config.network)
    unwrapped = getattr(env, "unwrapped", env)
    skill_ids = [unwrapped.library.id(n) for n in unwrapped.skills]

    @jax.jit
    def run(key):
        state, ts = jax.vmap(env.reset)(jax.random.split(key, episodes))
        false = jnp.zeros((episodes,), bool)
        zeros = jnp.zeros((episodes, max(len(skill_ids), 1)), jnp.int32)
        carry = dict(state=state, obs=ts.observation, first=~false, invalid=false,
                     core=network.initial_state(episodes), done=false, success=false,
                     calls=zeros, fails=zeros, t=jnp.zeros((), jnp.int32))

        def cond(c):
            return ~jnp.all(c["done"]) & (c["t"] < cap)

        def body(c):
            core, out = network.step(params, c["core"], c["obs"], c["first"], None, True,
                                     invalid=c["invalid"])
            state, ts = jax.vmap(env.step)(c["state"], out.policy.action)
            live = ~c["done"]
            called = jnp.stack([live & (ts.extras["returned_program"] == i)
                                & (out.policy.action[:, 0] == i) for i in skill_ids], -1) \
                if skill_ids else jnp.zeros_like(c["calls"], bool)
            failed = called & ~ts.extras["postcondition"][:, None]
            last = ts.last() & live
            return dict(state=state, obs=ts.observation, first=false,
                        invalid=ts.extras["invalid_action"], core=core,
                        done=c["done"] | last, success=c["success"] | (last & ts.extras["success"]),
                        calls=c["calls"] + called, fails=c["fails"] + failed, t=c["t"] + 1)

        return jax.lax.while_loop(cond, body, carry)

    c = jax.device_get(run(jax.random.PRNGKey(seed)))
    success = np.asarray(c["success"])
    skill_failed = np.asarray(c["fails"]).sum(-1) > 0
    calls = np.asarray(c["calls"]).sum(0)
    fails = np.asarray(c["fails"]).sum(0)
    return {
        "size": size, "episodes": episodes, "task_success": float(success.mean()),
        "skills": {n: {"calls": int(calls[i]), "call_success": float(1 - fails[i] / max(
            calls[i], 1))} for i, n in enumerate(unwrapped.skills)},
        "failed_episodes": int((~success).sum()),
        "failed_with_a_skill_failure": int((~success & skill_failed).sum()),
        "failed_with_every_skill_call_right": int((~success & ~skill_failed).sum()),
    }


def cmd_reliability(args: argparse.Namespace, argv: List[str]) -> None:
    from npigym.experiments.evaluate import load_run

    part = _load(f"train-{args.arm}")
    if part is None:
        raise SystemExit(f"no trained {args.arm} arm in {PARTS}; run `train --arm {args.arm}`")
    config, _, params, _ = load_run(part["run_dir"])
    rows = []
    for size in [int(x) for x in args.sizes.split(",")]:
        for s, p in enumerate(params):
            row = episode_outcomes(config, p, size, args.episodes)
            row["seed"] = config.seed + s
            rows.append(row)
            print(json.dumps(row), flush=True)
    _save_part(f"reliability-{args.arm}", {
        "rows": rows, "command": "benchmarks/composition.py "
                                 + " ".join(shlex.quote(a) for a in argv)})


def cmd_cost(args: argparse.Namespace, argv: List[str]) -> None:
    from npigym import make
    from npigym.skills import load

    kwargs = dict(max_digits=args.size)
    envs = {"ADD learned skill": make("Multiplication-v0", skills={"ADD": load(args.skill)},
                                      **kwargs),
            "ADD builtin expert": make("Multiplication-v0", **kwargs)}
    fns = {}
    for name, env in envs.items():
        def rollout(state, env=env):
            def body(s, _):
                s, ts = jax.vmap(env.step)(s, jax.vmap(env.expert_action)(s))
                return s, (ts.extras["primitive_steps"].sum(),
                           ts.extras.get("skill_steps", jnp.zeros((args.batch,), jnp.int32)
                                         ).sum())
            return jax.lax.scan(body, state, None, length=args.steps)
        fns[name] = jax.jit(rollout)
        state, _ = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), args.batch))
        fns[name] = (fns[name], state)
        jax.block_until_ready(fns[name][0](state))
    times: Dict[str, List[float]] = {n: [] for n in envs}
    inner: Dict[str, int] = {}
    for _ in range(args.rounds):
        for name, (fn, state) in fns.items():
            t0 = time.perf_counter()
            _, (prims, decisions) = jax.block_until_ready(fn(state))
            times[name].append(time.perf_counter() - t0)
            inner[name] = int(decisions.sum())
    rows = []
    for name in envs:
        median = statistics.median(times[name])
        rows.append({"env": name, "steps_per_s": args.batch * args.steps / median,
                     "median_call_s": median, "skill_decisions_per_call": inner[name]})
    ref = rows[1]["steps_per_s"]
    for r in rows:
        r["ratio_vs_builtin"] = r["steps_per_s"] / ref
        print(json.dumps(r), flush=True)
    _save_part("cost", {"rows": rows, "batch": args.batch, "steps": args.steps,
                        "rounds": args.rounds, "size": args.size,
                        "command": "benchmarks/composition.py "
                                   + " ".join(shlex.quote(a) for a in argv)})


def _load(name: str) -> Optional[Dict[str, Any]]:
    parts = json.loads(PARTS.read_text()) if PARTS.exists() else {}
    return parts.get(name)


def cmd_report(args: argparse.Namespace, argv: List[str]) -> None:
    lines = ["# Composition: learned skills as actions", "",
             "Multiplication-v0 (MUL over ADD) trained by the actor-critic from reward alone, "
             "with ADD as a learned skill (Addition-macro's policy: ADD's loop learned, its "
             "ADD1 and LSHIFT the expert's), as the expert (builtin), executed by the agent "
             "in that same posing (agent-macro: learning the skill's loop inside MUL), "
             "executed with all its programs (agent: learning it all) or flat. Env steps are "
             "the agent's own (one per MUL-level "
             "decision; a skill or builtin call is one step); seeds train side by side on the "
             "2-core CPU, so wall times are shared.", "",
             "## Env steps to 99 % greedy success", "",
             "| arm | task | skills bound | seeds at target | env steps to target, per seed | "
             "train s | command |", "|---|---|---|---|---|---|---|"]
    trains = {arm: _load(f"train-{arm}") for arm in ARMS}
    for arm, part in trains.items():
        if part is None:
            continue
        reached = part["reached"]
        per_seed = ", ".join(f"{r[0]:,}" if r else f"> {part['env_steps']:,}" for r in reached)
        hit = sum(r is not None for r in reached)
        command = f"`{part['command']}`" + "".join(
            f", then `{c['command']}` (greedy success at its end: "
            f"{', '.join(f'{r:.3f}' for r in c['greedy_success'])})"
            for c in part.get("continued", []))
        skills = ", ".join(f"{p}: {os.path.relpath(r)}" for p, r in part["skills"].items())
        note = f" ({part['note']})" if part.get("note") else ""
        lines.append(f"| {arm} | {part['env']} at size {part['size']} | {skills or '-'} | "
                     f"{hit}/{len(reached)} | {per_seed} | {part['train_s']:.0f} | "
                     f"{command}{note} |")
    skill = trains.get("skill")
    if skill:
        worst = max((r[0] if r else float("inf")) for r in skill["reached"])
        lines += ["", f"The slowest seed with the learned ADD skill needed {worst:,} env steps. "
                      "Against it (target: at least 5x fewer with the skill, on every seed):", ""]
        for arm in ("builtin", "agent-macro", "agent", "flat"):
            other = trains.get(arm)
            if other is None:
                continue
            steps = [r[0] if r else None for r in other["reached"]]
            best = min(s if s is not None else other["env_steps"] for s in steps)
            bound = "" if all(s is not None for s in steps) else "at least "
            lines.append(f"- {arm}: the fastest seed {bound}{best:,} steps, {bound}"
                         f"{best / worst:.1f}x the skill's slowest"
                         + ("" if bound else f" (all {len(steps)} seeds reached the target)"))
    lines += ["", "## Success per size (greedy)", ""]
    for arm, part in trains.items():
        if part and part["rows"]:
            what = ("numbers of N digits, 2-3 pairs" if part["env"] == "DotProduct-v0"
                    else "both operands N digits")
            cap = ("each episode capped at 60 N + 100 steps" if "cut" in part["rows"][0]
                   else "the env's default step limit")
            lines.append(f"**{arm}** (size N: {what}; greedy, {cap})")
            lines.append("")
            lines.append("| size | " + " | ".join(f"seed {r['seed']}" for r in part["rows"]
                                                  if r["length"] == part["rows"][0]["length"])
                         + " |")
            sizes = sorted({r["length"] for r in part["rows"]})
            lines.append("|---|" + "---|" * (len(part["rows"]) // len(sizes)))
            for size in sizes:
                lines.append(f"| {size} | " + " | ".join(f"{r['success']:.3f}" for r in
                                                        part["rows"] if r["length"] == size)
                             + " |")
            lines.append("")
    rel = [(arm, _load(f"reliability-{arm}")) for arm in ARMS]
    rel = [(a, r) for a, r in rel if r]
    if rel:
        lines += ["## Reliability of composition", "",
                  "Greedy episodes of the trained policies with every skill call's outcome: "
                  "each skill's per-call success next to the composed task's, and whether a "
                  "failed episode had a failed skill call (the skill's fault) or none (the new "
                  "policy's).", ""]
        for arm, part in rel:
            lines += ["| arm | size | seed | task success | skill: calls, per-call success | "
                      "failed episodes | with a failed skill call | with every skill call "
                      "right |", "|---|---|---|---|---|---|---|---|"]
            for r in part["rows"]:
                skills = "; ".join(f"{n}: {v['calls']}, {v['call_success']:.4f}"
                                   for n, v in r["skills"].items())
                lines.append(f"| {arm} | {r['size']} | {r['seed']} | {r['task_success']:.3f} "
                             f"| {skills} | {r['failed_episodes']} | "
                             f"{r['failed_with_a_skill_failure']} | "
                             f"{r['failed_with_every_skill_call_right']} |")
            lines += ["", f"Command: `{part['command']}`", ""]
    if args.curriculum:
        report = Path(args.curriculum) / "report.md"
        table = [line for line in report.read_text().splitlines() if line.startswith("|")]
        lines += ["## The skill curriculum: ADD -> MUL -> DOT, and no forgetting", "",
                  "One seed per generation; each admitted skill is frozen, and the last "
                  "column compares its parameter hash (and, re-measured, its success) after "
                  "the later generations trained with the value at admission.", "", *table, "",
                  f"Command: `npigym curriculum arithmetic --dir {args.curriculum} --recheck` "
                  "(the same command trains the plan, or resumes it).", ""]
    cost = _load("cost")
    if cost:
        lines += ["## Cost of a learned skill", "",
                  f"Multiplication-v0 at B = {cost['batch']:,} envs, {cost['steps']} steps per "
                  f"call, the expert's MUL decisions, median of {cost['rounds']} alternating "
                  f"rounds in one process (operands 1-{cost['size']} digits).", "",
                  "| ADD as | env steps/s | ratio | skill decisions per call |",
                  "|---|---|---|---|"]
        for r in cost["rows"]:
            lines.append(f"| {r['env']} | {r['steps_per_s']:,.0f} | "
                         f"{r['ratio_vs_builtin']:.2f}x | {r['skill_decisions_per_call']:,} |")
        lines += ["", f"Command: `{cost['command']}`", ""]
    load = os.getloadavg()
    lines += ["## Machine", "", f"- {platform.machine()}, {os.cpu_count()} cores, load "
              f"{load[0]:.1f} at report time; JAX {jax.__version__} ({jax.default_backend()})",
              f"- report written {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC", ""]
    out = RESULTS / "composition.md"
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--arm", choices=sorted(ARMS), required=True)
    t.add_argument("--skill", default=None, help="the skill to bind (saved skill or run dir)")
    t.add_argument("--seeds", type=int, default=3)
    t.add_argument("--minutes", type=float, default=10.0)
    t.add_argument("--size", type=int, default=3)
    t.add_argument("--target", type=float, default=0.99)
    t.add_argument("--eval-every", type=float, default=20.0)
    t.add_argument("--eval-episodes", type=int, default=200)
    t.add_argument("--lengths", default="10")
    t.add_argument("--length-episodes", type=int, default=50)
    t.add_argument("--steps-per-digit", type=int, default=60)
    t.add_argument("--run-dir", default=None)
    t.add_argument("overrides", nargs="*")
    le = sub.add_parser("lengths")
    le.add_argument("--arm", choices=sorted(ARMS), default="skill")
    le.add_argument("--lengths", default="10,50,100")
    le.add_argument("--episodes", type=int, default=20)
    le.add_argument("--steps-per-digit", type=int, default=60)
    co = sub.add_parser("continue")
    co.add_argument("--arm", choices=sorted(ARMS), default="agent")
    co.add_argument("--minutes", type=float, default=15.0)
    co.add_argument("--eval-episodes", type=int, default=200)
    r = sub.add_parser("reliability")
    r.add_argument("--arm", choices=sorted(ARMS), default="skill")
    r.add_argument("--sizes", default="3,10")
    r.add_argument("--episodes", type=int, default=200)
    c = sub.add_parser("cost")
    c.add_argument("--skill", required=True)
    c.add_argument("--batch", type=int, default=4096)
    c.add_argument("--steps", type=int, default=20)
    c.add_argument("--rounds", type=int, default=5)
    c.add_argument("--size", type=int, default=3)
    rep = sub.add_parser("report")
    rep.add_argument("--curriculum", default=None,
                     help="a plan directory of `npigym curriculum arithmetic` to include")
    args = p.parse_args(argv)
    {"train": cmd_train, "lengths": cmd_lengths, "continue": cmd_continue,
     "reliability": cmd_reliability,
     "cost": cmd_cost, "report": cmd_report}[args.command](args, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
