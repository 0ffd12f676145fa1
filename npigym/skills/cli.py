"""``npigym skills``: the skill library on the command line.

    npigym skills list [--root R]
    npigym skills show REF [--root R]
    npigym skills save RUN_DIR --name NAME [--program P] [--seed-index I] [--sizes 5,20,100]
                       [--episodes N] [--task ENV_ID] [--root R]

The root is ``--root``, else ``$NPIGYM_SKILLS``, else ``skills/`` under the current directory.
"""

from __future__ import annotations

import argparse
from typing import Any, List


def _parse_sizes(text: str) -> List[int]:
    if text.strip().lower() in ("", "none"):
        return []
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"npigym skills save: --sizes takes sizes like 5,20,100, not {text!r}") \
            from None
    if min(sizes, default=1) < 1:
        raise SystemExit("npigym skills save: --sizes must be positive")
    return sizes


def _run_list(args: argparse.Namespace) -> int:
    from npigym.skills import list_skills, skills_root

    infos = list_skills(args.root)
    if not infos:
        print(f"no skills in {skills_root(args.root)}")
        return 0
    width = max(len(i.ref) for i in infos)
    for i in infos:
        sizes = ", ".join(f"{k}: {v:.2f}" for k, v in i.success.items()) or "-"
        print(f"{i.ref:<{width}}  {i.env} {i.program:<12} success {sizes}  ({i.created})")
    return 0


def _run_show(args: argparse.Namespace) -> int:
    from npigym.skills import SkillError, info

    try:
        print(info(args.ref, args.root).describe())
    except SkillError as e:
        raise SystemExit(f"npigym skills: {e}") from None
    return 0


def _run_save(args: argparse.Namespace) -> int:
    from npigym.skills import SkillError, save

    sizes = _parse_sizes(args.sizes)
    try:
        saved = save(args.run_dir, args.name, program=args.program, seed_index=args.seed_index,
                     root=args.root, eval_sizes=sizes, episodes=args.episodes,
                     task=args.task)
    except SkillError as e:
        raise SystemExit(f"npigym skills: {e}") from None
    print(f"saved {saved.ref} to {saved.path}")
    print(saved.describe())
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("skills", help="the library of trained skills (list, show, save)")
    sub = p.add_subparsers(dest="skills_command", required=True, metavar="SKILLS_COMMAND")

    def root_option(q: argparse.ArgumentParser) -> None:
        q.add_argument("--root", default=None,
                       help="the library's root (default $NPIGYM_SKILLS, else ./skills)")

    q = sub.add_parser("list", help="every saved skill version")
    root_option(q)
    q.set_defaults(run=_run_list)

    q = sub.add_parser("show", help="what a saved skill is: NAME, NAME@vK or a version dir")
    q.add_argument("ref")
    root_option(q)
    q.set_defaults(run=_run_show)

    q = sub.add_parser("save", help="save a run's policy as the next version of a skill")
    q.add_argument("run_dir", help="a run directory of `npigym train` (actor-critic or NPI)")
    q.add_argument("--name", required=True, help="the skill's name")
    q.add_argument("--program", default=None,
                   help="the program it executes (default: the env's root)")
    q.add_argument("--seed-index", type=int, default=0, help="which of the run's seeds")
    q.add_argument("--sizes", default="5,20,100",
                   help="instance sizes to measure success at ('none': skip)")
    q.add_argument("--episodes", type=int, default=20, help="episodes per size")
    q.add_argument("--task", default=None,
                   help="NPI runs of several envs: the env id whose program it is")
    root_option(q)
    q.set_defaults(run=_run_save)
