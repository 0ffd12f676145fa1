"""Evaluate trained agents: success rate per instance size (NPI's length generalisation).

    npigym eval RUN_DIR --lengths 5,20,100,1000 [--episodes 100] [--sample] [--checkpoint best]

prints and saves (``eval.md``, ``eval.json`` in the run directory) a table of success rate,
mean return and episode length per size for each trained seed, and one more table for each of
the config's ``eval_variants`` (e.g. Canonicalize's unseen car models; ``eval.json`` keeps them
under ``variants``). Episodes use the env's default step limit, which scales with the instance
(twice the hierarchical expert's worst case).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from npigym.agents.networks import Network
from npigym.experiments import run_dir as rd
from npigym.experiments.config import ConfigError, TrainConfig, read_config


class EvalResult(NamedTuple):
    """Statistics of ``episodes`` evaluation episodes."""

    episodes: int
    success: float
    return_: float
    length: float
    truncated: float
    seconds: float


def make_evaluator(env: Any, network: Network, num_episodes: int, greedy: bool = True,
                   max_steps: Optional[int] = None) -> Callable[[Any, chex.PRNGKey], Dict]:
    """``evaluate(params, key) -> dict of per-episode arrays`` (jitted): runs ``num_episodes``
    episodes in parallel until all have ended (or ``max_steps``), with the greedy or sampled
    policy, and reports each episode's success, return, length and truncation."""
    unwrapped = getattr(env, "unwrapped", env)
    program_env = hasattr(unwrapped, "library")
    cap = jnp.iinfo(jnp.int32).max if max_steps is None else int(max_steps)

    @jax.jit
    def evaluate(params: Any, key: chex.PRNGKey) -> Dict[str, chex.Array]:
        reset_key, key = jax.random.split(key)
        env_state, ts = jax.vmap(env.reset)(jax.random.split(reset_key, num_episodes))
        zeros_f = jnp.zeros((num_episodes,), jnp.float32)
        zeros_i = jnp.zeros((num_episodes,), jnp.int32)
        false = jnp.zeros((num_episodes,), bool)
        carry = dict(env_state=env_state, obs=ts.observation, first=~false, invalid=false,
                     core=network.initial_state(num_episodes), key=key, done=false,
                     success=false, truncated=false, ret=zeros_f, length=zeros_i,
                     t=jnp.zeros((), jnp.int32))

        def cond(c):
            return ~jnp.all(c["done"]) & (c["t"] < cap)

        def body(c):
            key, step_key = jax.random.split(c["key"])
            core, out = network.step(params, c["core"], c["obs"], c["first"], step_key, greedy,
                                     invalid=c["invalid"])
            env_state, ts = jax.vmap(env.step)(c["env_state"], out.policy.action)
            live = ~c["done"]
            last = ts.last() & live
            success = ts.extras["success"] if program_env else ts.extras.get("success", false)
            return dict(
                env_state=env_state, obs=ts.observation, first=false,
                invalid=jnp.asarray(ts.extras.get("invalid_action", false), bool), core=core,
                key=key,
                done=c["done"] | last, success=c["success"] | (last & success),
                truncated=c["truncated"] | (last & (ts.discount > 0)),
                ret=c["ret"] + jnp.where(live, ts.reward, 0.0),
                length=c["length"] + live.astype(jnp.int32), t=c["t"] + 1)

        c = jax.lax.while_loop(cond, body, carry)
        return dict(success=c["success"], ret=c["ret"], length=c["length"],
                    truncated=c["truncated"], done=c["done"])

    return evaluate


def evaluate(env: Any, network: Network, params: Any, key: chex.PRNGKey, num_episodes: int,
             greedy: bool = True, max_steps: Optional[int] = None) -> EvalResult:
    """Run ``num_episodes`` episodes of ``env`` with the policy and summarise them."""
    start = time.perf_counter()
    out = jax.device_get(make_evaluator(env, network, num_episodes, greedy, max_steps)(
        params, key))
    return EvalResult(num_episodes, float(np.mean(out["success"])), float(np.mean(out["ret"])),
                      float(np.mean(out["length"])), float(np.mean(out["truncated"])),
                      time.perf_counter() - start)


def variant_config(config: TrainConfig, variant: Optional[str]) -> TrainConfig:
    """``config`` with the env keywords of its eval variant ``variant`` (None: itself)."""
    if variant is None:
        return config
    if variant not in config.eval_variants:
        raise ConfigError(f"no eval variant {variant!r}; the config has: "
                          f"{', '.join(config.eval_variants) or 'none'}")
    return dataclasses.replace(config, env_kwargs={**config.env_kwargs,
                                                   **config.eval_variants[variant]})


def length_table(config: TrainConfig, params_per_seed: Sequence[Any],
                 lengths: Sequence[Optional[int]], episodes: int, greedy: bool = True,
                 seed: int = 0, progress: bool = False,
                 variant: Optional[str] = None) -> List[Dict[str, Any]]:
    """Evaluate every seed's params at every size; one row per (size, seed).

    ``lengths`` may hold ``None``: the env as configured (for envs without size knobs).
    ``variant``: one of ``config.eval_variants`` (the env with its keywords replaced; the
    instances are drawn from the same keys), its rows marked ``variant``.
    """
    from npigym.agents.networks import make_network
    from npigym.experiments.factory import make_env

    config = variant_config(config, variant)
    rows = []
    for length in lengths:
        env = make_env(config, size=length, whole_task=True)
        network = make_network(env, config.network)
        evaluator = make_evaluator(env, network, episodes, greedy)
        for s, params in enumerate(params_per_seed):
            start = time.perf_counter()
            out = jax.device_get(evaluator(params, jax.random.PRNGKey(10_000 + seed + length
                                                                       if length else seed)))
            row = dict(length=length, seed=config.seed + s, episodes=episodes,
                       success=float(np.mean(out["success"])), ret=float(np.mean(out["ret"])),
                       steps=float(np.mean(out["length"])),
                       truncated=float(np.mean(out["truncated"])),
                       seconds=round(time.perf_counter() - start, 2))
            if variant is not None:
                row["variant"] = variant
            rows.append(row)
            if progress:
                print(f"  {f'{variant}, ' if variant else ''}size {length}: seed {row['seed']} "
                      f"success {row['success']:.3f} ({row['seconds']:.1f} s)", flush=True)
    return rows


def format_table(rows: List[Dict[str, Any]], title: str = "") -> str:
    """Markdown: one row per size, success per seed and their mean (NPI-figure style)."""
    lengths = sorted({r["length"] or 0 for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    header = ("| size | " + " | ".join(f"seed {s}" for s in seeds)
              + " | mean success | mean return | mean steps | truncated |")
    lines = [f"### {title}" if title else "", header,
             "|" + "---|" * (len(seeds) + 5)]
    for length in lengths:
        sel = [r for r in rows if (r["length"] or 0) == length]
        by_seed = {r["seed"]: r for r in sel}
        cells = [f"{by_seed[s]['success']:.3f}" if s in by_seed else "" for s in seeds]
        lines.append(f"| {length or 'default'} | " + " | ".join(cells)
                     + f" | {np.mean([r['success'] for r in sel]):.3f}"
                     + f" | {np.mean([r['ret'] for r in sel]):.3f}"
                     + f" | {np.mean([r['steps'] for r in sel]):.0f}"
                     + f" | {np.mean([r['truncated'] for r in sel]):.3f} |")
    return "\n".join(line for line in lines if line) + "\n"


def load_run(path: str, step: Optional[int] = None, best: bool = False):
    """``(config, network, params per seed, progress)`` of the run directory's last (or
    ``step``) checkpoint; with ``best``, its best checkpoint (``keep_best``; ``progress`` is
    then the best checkpoint's record: per seed its call and validation score)."""
    from npigym.experiments.train import build

    if not rd.is_run_dir(path):
        raise ConfigError(f"{path} is not a run directory (no {rd.CONFIG})")
    config = read_config(os.path.join(path, rd.CONFIG))
    _, network, _, init, _ = build(config)
    if best:
        from npigym.experiments.best import load_best

        if step is not None:
            raise ValueError("load_run: pass step or best, not both")
        stacked, record = load_best(path, jax.eval_shape(init).params)
        params = [jax.tree.map(lambda x, i=i: jnp.asarray(x[i]), stacked)
                  for i in range(config.num_seeds)]
        return config, network, params, record
    checkpointer = rd.Checkpointer(path)
    try:
        state, progress = checkpointer.restore(rd.abstract(jax.eval_shape(init)), step)
    finally:
        checkpointer.close()
    params = [jax.tree.map(lambda x, i=i: x[i], state.params) for i in range(config.num_seeds)]
    return config, network, params, progress


def evaluate_run(path: str, lengths: Sequence[Optional[int]], episodes: int,
                 greedy: bool = True, save: bool = True, progress: bool = True,
                 best: bool = False) -> str:
    """Evaluate a run directory at ``lengths``; print, save and return the markdown table
    (one table more per ``eval_variants`` entry of the run's config).

    With ``best``, the run's best checkpoint (``keep_best``), saved as ``eval_best.md`` and
    ``eval_best.json`` (with each seed's call and validation score)."""
    config, _, params, record = load_run(path, best=best)
    rows = length_table(config, params, lengths, episodes, greedy, progress=progress)
    variants = {name: length_table(config, params, lengths, episodes, greedy,
                                   progress=progress, variant=name)
                for name in config.eval_variants}
    mode = "greedy" if greedy else "sampled"
    which = ""
    if best:
        calls = ", ".join(f"seed {s['seed']} from call {s['call']}" for s in record["seeds"])
        which = f", best checkpoint: {calls}"
    how = f"success rate per instance size ({mode} policy, {episodes} episodes per size{which})"
    table = format_table(rows, f"{config.env} {dict(config.env_kwargs)}: {how}")
    for name, variant_rows in variants.items():
        table += "\n" + format_table(
            variant_rows, f"variant {name} {dict(config.eval_variants[name])}: {how}")
    if save:
        md, js = (rd.EVAL_BEST_MD, rd.EVAL_BEST_JSON) if best else (rd.EVAL_MD, rd.EVAL_JSON)
        with open(os.path.join(path, md), "w") as f:
            f.write(table)
        with open(os.path.join(path, js), "w") as f:
            json.dump({"greedy": greedy, "rows": rows,
                       **({"variants": variants} if variants else {}),
                       **({"best": record} if best else {})}, f, indent=1)
    return table


def parse_lengths(text: str) -> List[int]:
    try:
        lengths = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"npigym eval: --lengths takes sizes like 5,20,100, not {text!r}") \
            from None
    if not lengths or min(lengths) < 1:
        raise SystemExit("npigym eval: --lengths must be positive sizes")
    return lengths


def _run_eval(args: argparse.Namespace) -> int:
    from npigym.experiments import npi_runs

    if npi_runs.is_npi_run(args.run_dir):
        if args.sample:
            raise SystemExit("npigym eval: an NPI run is evaluated greedily (no --sample)")
        if args.checkpoint != "latest":
            raise SystemExit("npigym eval: --checkpoint best is for a2c runs (keep_best=true)")
        print(npi_runs.eval_from_command_line(args.run_dir, args.lengths,
                                              args.episodes or 100))
        print(f"saved {os.path.join(args.run_dir, rd.EVAL_MD)}")
        return 0
    try:
        config = read_config(os.path.join(args.run_dir, rd.CONFIG)) \
            if rd.is_run_dir(args.run_dir) else None
        if config is None:
            raise ConfigError(f"{args.run_dir} is not a run directory (no {rd.CONFIG})")
        lengths: List[Optional[int]] = (parse_lengths(args.lengths) if args.lengths
                                        else list(config.eval_lengths) or [None])
        best = args.checkpoint == "best"
        table = evaluate_run(args.run_dir, lengths, args.episodes or config.eval_episodes,
                             greedy=not args.sample, best=best)
    except (ConfigError, rd.CheckpointError) as e:
        raise SystemExit(f"npigym eval: {e}") from None
    print(table)
    print(f"saved {os.path.join(args.run_dir, rd.EVAL_BEST_MD if best else rd.EVAL_MD)}")
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("eval", help="success rate of a trained agent per instance size")
    p.add_argument("run_dir", help="a run directory written by `npigym train` (a2c or npi)")
    p.add_argument("--lengths", default=None,
                   help="sizes, e.g. 5,20,100,1000 (default: the config's eval_lengths)")
    p.add_argument("--episodes", type=int, default=None, help="episodes per size")
    p.add_argument("--sample", action="store_true",
                   help="sample actions instead of taking the most likely one")
    p.add_argument("--checkpoint", choices=("latest", "best"), default="latest",
                   help="the last checkpoint (default) or the best one kept by the validation "
                        "set of keep_best=true (saved as eval_best.md)")
    p.set_defaults(run=_run_eval)


def agent_policy(network: Network, params: Any, greedy: bool = True, seed: int = 0):
    """A host policy ``policy(state, timestep) -> action`` for ``npigym.experiments.play``.

    It keeps the agent's recurrent state between calls, so it must see one episode's steps in
    order from its first (``play`` does exactly that).
    """
    step = jax.jit(lambda core, obs, first, invalid, key: network.step(
        params, core, obs, first, key, greedy, invalid=invalid))
    memory = {"core": network.initial_state(1), "first": True, "key": jax.random.PRNGKey(seed)}

    def policy(state: Any, timestep: Any) -> np.ndarray:
        obs = jax.tree.map(lambda x: jnp.asarray(x)[None], timestep.observation)
        key, sub = jax.random.split(memory["key"])
        invalid = bool(timestep.extras.get("invalid_action", False))
        core, out = step(memory["core"], obs, jnp.asarray([memory["first"]]),
                         jnp.asarray([invalid]), sub)
        memory.update(core=core, first=False, key=key)
        return np.asarray(out.policy.action[0])

    return policy
