"""The ``npigym`` command.

    npigym list [-v]
    npigym play Addition-v0 --digits 5 --seed 0 [--gif out.gif]
    npigym play RUN_DIR --digits 20           (a trained agent, from `npigym train`)
    npigym traces Addition-v0 -n 1000 -o traces.npz

Environment options are ``key=value`` words (``reward=dense modes=macro``);
values are read as Python literals when they parse as one (``max_digits=20``), else as strings.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

# Modules that add subcommands: each has ``add_parser(subparsers)``; the parser's ``run``
# default is called with the parsed arguments. Later parts (training, evaluation) append here.
SUBCOMMAND_MODULES: List[str] = ["npigym.experiments.train", "npigym.experiments.evaluate"]
# npi-train / npi-eval / npi-play: the NPI's own commands, with its extra options (--base,
# --train-programs); `train --agent npi`, `eval` and `play` dispatch to the same functions.
SUBCOMMAND_MODULES.append("npigym.experiments.npi_runs")
SUBCOMMAND_MODULES.append("npigym.skills.cli")
SUBCOMMAND_MODULES.append("npigym.experiments.skill_curriculum")
SUBCOMMAND_MODULES.append("npigym.sweeps.cli")


def parse_overrides(words: Sequence[str]) -> Dict[str, Any]:
    """``["max_digits=5", "reward=dense"]`` -> ``{"max_digits": 5, "reward": "dense"}``."""
    out: Dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"npigym: expected key=value, got {word!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def make_env(env_id: str, size: Optional[int], overrides: Dict[str, Any]):
    """``npigym.make`` with ``--size`` applied to the env's size knobs; errors become exits."""
    import npigym

    kwargs = dict(overrides)
    try:
        if size is not None:
            factory = npigym.spec(env_id).load()
            knobs = getattr(factory, "size_knobs", ())
            if not knobs:
                raise SystemExit(f"npigym: {env_id} has no size knob; use key=value options")
            kwargs.update({k: size for k in knobs if k not in overrides})
        return npigym.make(env_id, **kwargs)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"npigym: {e}") from None


def _run_list(args: argparse.Namespace) -> int:
    import npigym

    ids = npigym.registered_environments()
    width = max(len(i) for i in ids)
    for env_id in ids:
        print(f"{env_id:<{width}}  {npigym.spec(env_id).description}")
        if args.verbose:
            env = npigym.make(env_id)
            library = getattr(env, "library", None)
            if library is None:  # e.g. DiscountingChain-v0: a plain Jumanji env, no programs
                print("      (no program library: actions are the env's own)")
            else:
                print("\n".join("      " + line for line in library.describe().splitlines()))
    return 0


def _agent_env_and_policy(run_dir: str, size: Optional[int], options: Dict[str, Any],
                          best: bool = False):
    """The env and a trained agent's policy from a run directory written by `npigym train`."""
    import dataclasses

    from npigym.agents.networks import make_network
    from npigym.experiments import run_dir as rd
    from npigym.experiments.config import ConfigError
    from npigym.experiments.evaluate import agent_policy, load_run
    from npigym.experiments.factory import make_env as make_config_env

    try:
        config, _, params, _ = load_run(run_dir, best=best)
        config = dataclasses.replace(config, env_kwargs={**config.env_kwargs, **options})
        env = make_config_env(config, size=size, whole_task=True)
    except (ConfigError, FileNotFoundError, rd.CheckpointError) as e:
        raise SystemExit(f"npigym: {e}") from None
    if not hasattr(env, "library"):
        raise SystemExit(f"npigym: play shows program-machine envs; {config.env} is not one "
                         "(use `npigym eval` for its scores)")
    return env, agent_policy(make_network(env, config.network), params[0])


def _run_play(args: argparse.Namespace) -> int:
    import jax

    from npigym.experiments import npi_runs
    from npigym.experiments.play import expert_policy, play, save_gif

    if os.path.isdir(args.env) and npi_runs.is_npi_run(args.env):  # a trained NPI
        env, policy = npi_runs.env_and_policy(args.env, args.size, options=args.options)
    elif os.path.isdir(args.env):  # a run directory: show the trained agent
        env, policy = _agent_env_and_policy(args.env, args.size, parse_overrides(args.options),
                                            best=args.checkpoint == "best")
    else:
        if args.checkpoint != "latest":
            raise SystemExit("npigym: --checkpoint is for a run directory of `npigym train`")
        env = make_env(args.env, args.size, parse_overrides(args.options))
        if not env.has_expert:
            raise SystemExit(f"npigym: {args.env} is posed without the program hierarchy, so it "
                             "has no step-by-step expert to show; try modes=hierarchical or "
                             "modes=macro")
        policy = expert_policy(env)
    interactive = sys.stdout.isatty() and not args.no_clear
    delay = args.delay if args.delay is not None else (0.15 if interactive else 0.0)
    result = play(env, policy, jax.random.PRNGKey(args.seed), show_states=not args.compact,
                  delay=delay, wait_for_enter=args.step, clear=interactive,
                  keep_states=args.gif is not None, max_steps=args.max_steps)
    if args.gif:
        frames = save_gif(env, result.states, args.gif, max_frames=args.gif_max_frames)
        print(f"wrote {args.gif} ({frames} frames)")
    return 0 if result.success else 1


def _run_traces(args: argparse.Namespace) -> int:
    import jax

    from npigym import traces

    env = make_env(args.env, args.size, parse_overrides(args.options))
    try:
        data = traces.collect(env, jax.random.PRNGKey(args.seed), args.num_episodes,
                              batch_size=args.batch_size)
    except ValueError as e:
        raise SystemExit(f"npigym: {e}") from None
    traces.save(data, args.output)
    size = os.path.getsize(args.output)
    print(f"wrote {args.output}: {data.num_episodes} episodes, {data.num_rows} decisions, "
          f"expert success {data.success.mean():.0%}, {size / 1e6:.1f} MB")
    return 0


def _size_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", "--digits", "--length", dest="size", type=int, default=None,
                        help="instance size: sets the env's min and max size knobs to N")
    parser.add_argument("--seed", type=int, default=0, help="reset key (default 0)")
    # key=value environment options are collected from the words argparse does not know, so
    # they may come before or after the flags.
    parser.set_defaults(takes_options=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npigym", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the registered environments")
    p.add_argument("-v", "--verbose", action="store_true", help="show each program library")
    p.set_defaults(run=_run_list)

    p = sub.add_parser("play", help="watch the expert, or a trained agent, solve an instance "
                                    "step by step")
    p.add_argument("env", help="environment id, e.g. Addition-v0 (the expert plays), or a run "
                               "directory of `npigym train` (the trained agent plays)")
    _size_options(p)
    p.add_argument("--gif", default=None, help="also write the episode to this GIF")
    p.add_argument("--gif-max-frames", type=int, default=300)
    p.add_argument("--delay", type=float, default=None,
                   help="seconds between steps (default 0.15 on a terminal, else 0)")
    p.add_argument("--step", action="store_true", help="wait for Enter after each step")
    p.add_argument("--compact", action="store_true", help="print calls only, not the states")
    p.add_argument("--no-clear", action="store_true", help="scroll instead of redrawing")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--checkpoint", choices=("latest", "best"), default="latest",
                   help="for a run directory: its last checkpoint (default) or the best one "
                        "kept by keep_best=true")
    p.set_defaults(run=_run_play)

    p = sub.add_parser("traces", help="collect expert execution traces into an .npz file")
    p.add_argument("env", help="environment id, e.g. Addition-v0")
    p.add_argument("-n", "--num-episodes", type=int, default=1000)
    p.add_argument("-o", "--output", default="traces.npz")
    p.add_argument("--batch-size", type=int, default=256)
    _size_options(p)
    p.set_defaults(run=_run_traces)

    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    options = [w for w in extra if "=" in w and not w.startswith("-")]
    unknown = [w for w in extra if w not in options]
    if unknown or (options and not getattr(args, "takes_options", False)):
        parser.error(f"unrecognized arguments: {' '.join(unknown or options)}")
    args.options = options
    try:
        return args.run(args)
    except BrokenPipeError:  # `npigym list -v | head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by the pipe


if __name__ == "__main__":
    sys.exit(main())
