"""``npigym sweep``: run a sweep from a spec, resume it, report it.

    npigym sweep SPEC.yaml [key=value ...] [--dir SWEEP_DIR] [--backend local|ray] [--address A]
    npigym sweep report SWEEP_DIR
    npigym sweep status SWEEP_DIR

The same command resumes an interrupted sweep (its directory defaults to ``sweeps/<name>``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def _run_sweep(args: argparse.Namespace) -> int:
    from npigym.experiments.config import ConfigError
    from npigym.experiments.run_dir import CheckpointError
    from npigym.sweeps import runner
    from npigym.sweeps.report import load_sweep, print_report, report
    from npigym.sweeps.spec import load_spec

    options = [w for w in args.target if "=" in w] + list(args.options)
    positional = [w for w in args.target if "=" not in w]
    try:
        if positional[:1] in (["report"], ["status"]):
            if len(positional) != 2 or options:
                raise ConfigError(f"usage: npigym sweep {positional[0]} SWEEP_DIR")
            if positional[0] == "report":
                print_report(positional[1])
            else:
                spec, index = load_sweep(positional[1])
                counts = {}
                for r in index["trials"].values():
                    counts[r["status"]] = counts.get(r["status"], 0) + 1
                print(f"sweep {spec.name}: " + ", ".join(f"{n} {s}" for s, n in
                                                        sorted(counts.items())))
                print(runner.summary_table(index, spec))
            return 0
        if len(positional) != 1:
            raise ConfigError("usage: npigym sweep SPEC.yaml [key=value ...] "
                              "(or: npigym sweep report SWEEP_DIR)")
        spec = load_spec(positional[0], options)
        sweep_dir = args.dir or os.path.join("sweeps", spec.name)
        trials = spec.trials()
        if args.backend == "ray":
            from npigym.sweeps.ray_backend import run_ray

            index = run_ray(sweep_dir, spec, trials, address=args.address,
                            progress=not args.quiet)
        else:
            if args.address:
                raise ConfigError("--address is for --backend ray")
            index = runner.run_local(sweep_dir, spec, trials, progress=not args.quiet)
        print(runner.summary_table(index, spec))
        if not args.no_report:
            path = report(sweep_dir)
            print(f"report: {path}")
    except runner.SweepInterruptedError as e:
        print(f"npigym sweep: {e}", file=sys.stderr)
        return 128 + e.signum
    except (ConfigError, CheckpointError) as e:
        raise SystemExit(f"npigym sweep: {e}") from None
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep", help="train a grid / random search of configs x seeds; resumable; reports",
        description="Run a sweep: `npigym sweep SPEC.yaml [key=value ...]` (spec keys such as "
                    "seeds=3 or budget.total_env_steps=1e5 change the spec; other keys the base "
                    "config). Trials that differ only in learning rate, discount, lambda, "
                    "loss weights, meta-gradient step size or seed train as one vmapped "
                    "program. Run the same command again to resume. "
                    "`npigym sweep report SWEEP_DIR` writes report.md with rliable's IQM and "
                    "bootstrap intervals; `npigym sweep status SWEEP_DIR` shows progress.")
    p.add_argument("target", nargs="+", metavar="SPEC.yaml | report DIR | status DIR")
    p.add_argument("--dir", default=None, help="the sweep directory (default sweeps/<name>)")
    p.add_argument("--backend", default="local", choices=("local", "ray"),
                   help="local: vmapped groups on this machine; ray: one Ray Tune trial per "
                        "run (pip install 'npigym[sweep]')")
    p.add_argument("--address", default=None,
                   help="with --backend ray: join this Ray cluster (default: start a local one)")
    p.add_argument("--no-report", action="store_true", help="skip writing report.md at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_sweep, takes_options=True)
