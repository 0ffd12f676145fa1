"""``npigym curriculum``: learn a plan of skills generation by generation.

    npigym curriculum PLAN [--dir DIR] [--recheck]

A *plan* (a YAML file, or a built-in name such as ``arithmetic``) lists generations. Each
trains an agent on a task whose programs may be bound to the skills of earlier generations,
is tested on fresh (held-out) instances at its training size and on longer ones, and enters
the plan's skill library (``DIR/skills``) only if it passes; the next generation then calls
it. Frozen skills cannot be forgotten: the report re-reads every admitted skill's parameters
and checks their hash (``--recheck`` also re-measures their success table).

Everything is resumable: a generation trains in rounds (``round_minutes``, then a greedy test
at its training size), each round resuming the run directory's last checkpoint; the plan's
progress is written atomically to ``DIR/curriculum.json`` after each round. Killed at any
point, the same command picks up where it stopped and never retrains an admitted generation.
The report is ``DIR/report.md`` with ``DIR/report.png``.

A plan file::

    generations:
      - name: add                     # also the skill's name in DIR/skills
        config: addition-macro        # a preset or a YAML config of `npigym train`
        overrides: [num_seeds=1]      # key=value words, as on the command line
        program: ADD                  # the program saved as the skill (default: the root)
        train_size: 5                 # the greedy test during training, on fresh instances
        test_sizes: [5, 20, 100]      # tested before admission
        admit_sizes: [5]              # which of them must reach `target` (default train_size)
        target: 0.99
        minutes: 10                   # training budget
      - name: mul
        config: multiplication-macro
        skills: {ADD: add}            # program -> an earlier generation
        ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from npigym.experiments.config import ConfigError, load_config

STATE = "curriculum.json"
REPORT_MD = "report.md"
REPORT_PNG = "report.png"
LIBRARY = "skills"


@dataclasses.dataclass(frozen=True)
class Generation:
    """One generation of a plan (see the module docstring for the YAML keys)."""

    name: str
    config: str
    overrides: Tuple[str, ...] = ()
    skills: Mapping[str, str] = dataclasses.field(default_factory=dict)
    program: Optional[str] = None
    train_size: Optional[int] = None
    test_sizes: Tuple[int, ...] = ()
    admit_sizes: Optional[Tuple[int, ...]] = None
    target: float = 0.99
    minutes: float = 30.0
    round_minutes: float = 2.0
    episodes: int = 100

    @property
    def gate(self) -> Tuple[Optional[int], ...]:
        if self.admit_sizes is not None:
            return self.admit_sizes
        return (self.train_size,)


# Built-in plans. `arithmetic` is the ADD -> MUL -> DOT: Addition's programs (ADD's
# loop learned, its column programs builtin), then MUL over the learned ADD, then DOT over the
# learned MUL (whose own ADD stays the learned one: a skill calling a skill).
PLANS: Dict[str, Dict[str, Any]] = {
    "arithmetic": {"generations": [
        {"name": "add", "config": "addition-macro", "overrides": ["num_seeds=1"],
         "program": "ADD", "train_size": 5, "test_sizes": [5, 20, 100], "minutes": 10},
        {"name": "mul", "config": "multiplication-macro", "overrides": ["num_seeds=1"],
         "skills": {"ADD": "add"}, "program": "MUL", "train_size": 3,
         "test_sizes": [3, 5, 10], "minutes": 15},
        {"name": "dot", "config": "dot-product-macro", "overrides": ["num_seeds=1"],
         "skills": {"MUL": "mul"}, "program": "DOT", "train_size": 2,
         "test_sizes": [2, 3], "minutes": 15},
    ]},
}
# The same plan in seconds (tiny budgets, no success needed): a check that it runs end to end.
PLANS["arithmetic-smoke"] = {"generations": [
    dict(g, minutes=0.3, round_minutes=0.15, target=0.0, episodes=8,
         test_sizes=g["test_sizes"][:1], overrides=["num_seeds=1", "num_envs=8",
                                                    "rollout_length=4"])
    for g in PLANS["arithmetic"]["generations"]]}


class PlanError(ValueError):
    """A plan that makes no sense (unknown keys, a skill of a later generation, ...)."""


def read_plan(source: str) -> List[Generation]:
    """The generations of a built-in plan or a YAML file, checked.

    Raises:
        PlanError: unknown plan or keys, duplicate names, a binding to a generation that is not
            earlier in the plan, bad numbers.
    """
    if source in PLANS:
        tree: Any = PLANS[source]
    elif os.path.exists(source):
        with open(source) as f:
            try:
                tree = yaml.safe_load(f)
            except yaml.YAMLError as e:
                raise PlanError(f"plan {source}: not valid YAML ({e})") from None
    else:
        raise PlanError(f"plan {source!r} is neither a file nor a built-in plan "
                        f"({', '.join(PLANS)})")
    if not isinstance(tree, Mapping) or not isinstance(tree.get("generations"), list) \
            or not tree["generations"]:
        raise PlanError(f"plan {source}: expected a mapping with a non-empty 'generations' list")
    fields = {f.name for f in dataclasses.fields(Generation)}
    out: List[Generation] = []
    for i, g in enumerate(tree["generations"]):
        if not isinstance(g, Mapping):
            raise PlanError(f"plan {source}: generation {i} must be a mapping")
        unknown = sorted(set(g) - fields)
        if unknown:
            raise PlanError(f"plan {source}: generation {i} has unknown keys {unknown}; keys "
                            f"are {sorted(fields)}")
        try:
            gen = Generation(**{k: tuple(v) if k in ("overrides", "test_sizes", "admit_sizes")
                                and v is not None else v for k, v in g.items()})
        except TypeError as e:
            raise PlanError(f"plan {source}: generation {i}: {e}") from None
        earlier = {o.name for o in out}
        if gen.name in earlier:
            raise PlanError(f"plan {source}: two generations are called {gen.name!r}")
        later = [v for v in gen.skills.values() if v not in earlier]
        if later:
            raise PlanError(f"plan {source}: generation {gen.name!r} binds {later}, which are "
                            f"not earlier generations ({sorted(earlier) or 'none'})")
        if not 0.0 <= gen.target <= 1.0 or gen.minutes <= 0 or gen.round_minutes <= 0 \
                or gen.episodes < 1:
            raise PlanError(f"plan {source}: generation {gen.name!r}: target must be in [0, 1], "
                            "minutes, round_minutes and episodes positive")
        out.append(gen)
    return out


# ----------------------------------------------------------------------------------------------
# Progress: one JSON file, written atomically.
# ----------------------------------------------------------------------------------------------
def read_state(directory: str) -> Dict[str, Any]:
    path = os.path.join(directory, STATE)
    if not os.path.exists(path):
        return {"generations": {}}
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, OSError) as e:
        raise PlanError(f"{path} is unreadable ({e}); move it away to start the plan over") \
            from None


def write_state(directory: str, state: Dict[str, Any]) -> None:
    path = os.path.join(directory, STATE)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# Running a plan.
# ----------------------------------------------------------------------------------------------
def generation_config(gen: Generation, state: Dict[str, Any]):
    """The generation's training config, its bindings pointing at admitted skills."""
    refs = {}
    for program, earlier in gen.skills.items():
        record = state["generations"].get(earlier, {})
        if record.get("status") != "admitted":
            raise PlanError(f"generation {gen.name!r} needs skill {earlier!r}, which has not "
                            "been admitted")
        refs[program] = record["skill_path"]
    words = list(gen.overrides)
    if refs:
        words.append("skills=" + json.dumps(refs))
    return load_config(gen.config, words)


def greedy_success(run_dir: str, sizes: Sequence[Optional[int]], episodes: int,
                   seed: int) -> Dict[str, float]:
    """Greedy success per size of the run's first seed, on fresh instances (``seed``)."""
    from npigym.experiments.evaluate import length_table, load_run

    config, _, params, _ = load_run(run_dir)
    rows = length_table(config, params[:1], list(sizes), episodes, greedy=True, seed=seed)
    return {str(r["length"]): r["success"] for r in rows}


def _trained(run_dir: str) -> Tuple[float, float]:
    """(env steps, training seconds) a run directory has logged so far."""
    path = os.path.join(run_dir, "metrics.jsonl")
    steps = seconds = 0.0
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a torn last line of a killed run
                    continue
                steps, seconds = record.get("env_steps", steps), record.get("wall_time", seconds)
    return float(steps), float(seconds)


def run_generation(gen: Generation, directory: str, state: Dict[str, Any],
                   out: Any = sys.stdout) -> Dict[str, Any]:
    """Train, test and (if it passes) admit one generation; returns its record."""
    from npigym.experiments import run_dir as rd
    from npigym.experiments.train import train
    from npigym.skills import save

    record = state["generations"].setdefault(gen.name, {"status": "training", "rounds": []})
    run_dir = os.path.join(directory, gen.name, "run")
    config = generation_config(gen, state)
    start = time.perf_counter()
    while record["status"] == "training":
        _, trained_s = _trained(run_dir)
        if trained_s >= gen.minutes * 60:
            record["status"] = "testing"
            break
        # train()'s time limit counts this call's seconds; the round's share of the budget.
        budget = min(gen.round_minutes * 60, gen.minutes * 60 - trained_s)
        checkpoints = os.path.join(run_dir, rd.CHECKPOINTS)
        resume = os.path.isdir(checkpoints) and bool(os.listdir(checkpoints))
        with open(os.devnull, "w") as quiet:
            train(dataclasses.replace(config, time_limit_s=budget), run_dir, resume=resume,
                  progress=False, final_eval=False, out=quiet)
        steps, trained_s = _trained(run_dir)
        success = greedy_success(run_dir, [gen.train_size], gen.episodes,
                                 seed=len(record["rounds"]))[str(gen.train_size)]
        record["rounds"].append({"env_steps": steps, "train_s": trained_s, "success": success})
        print(f"  {gen.name}: {steps:>12,.0f} env steps, {trained_s:6.0f} s: greedy success "
              f"{success:.3f} at size {gen.train_size}", file=out, flush=True)
        if success >= gen.target:
            record["status"] = "testing"
        write_state(directory, state)
    if record["status"] == "testing":
        # Held-out: a seed no training-time test used; longer sizes as listed.
        sizes = list(dict.fromkeys([*gen.gate, *gen.test_sizes]))
        record["test"] = greedy_success(run_dir, sizes, gen.episodes, seed=90_000)
        passed = all(record["test"][str(s)] >= gen.target for s in gen.gate)
        record["env_steps"], record["train_s"] = _trained(run_dir)
        if passed:
            info = save(run_dir, gen.name, program=gen.program,
                        root=os.path.join(directory, LIBRARY), eval_sizes=None)
            record.update(status="admitted", skill=info.ref, skill_path=info.path,
                          params_sha256=info.params_sha256)
        else:
            record["status"] = "failed"
        write_state(directory, state)
    record["session_s"] = round(time.perf_counter() - start, 1)
    return record


def run_plan(source: str, directory: str, recheck: bool = False,
             out: Any = sys.stdout) -> str:
    """Run (or resume) a plan; returns the report's path."""
    plan = read_plan(source)
    os.makedirs(directory, exist_ok=True)
    state = read_state(directory)
    state["plan"] = source
    for gen in plan:
        record = state["generations"].get(gen.name, {})
        if record.get("status") == "admitted":
            print(f"{gen.name}: admitted earlier as {record['skill']}; not retrained", file=out)
            continue
        if record.get("status") == "failed":
            print(f"{gen.name}: failed its test earlier; the plan stops here (delete "
                  f"{os.path.join(directory, gen.name)} and its entry to retry)", file=out)
            break
        print(f"{gen.name}: training {gen.config} "
              + (f"with skills {dict(gen.skills)}" if gen.skills else ""), file=out, flush=True)
        record = run_generation(gen, directory, state, out)
        if record["status"] != "admitted":
            print(f"{gen.name}: not admitted (test {record.get('test')}, target {gen.target} "
                  f"at sizes {list(gen.gate)}); the plan stops here", file=out)
            break
        print(f"{gen.name}: admitted as {record['skill']} (test {record['test']})", file=out)
    return write_report(plan, directory, state, recheck, out)


def check_frozen(record: Dict[str, Any], recheck: bool, episodes: int) -> Dict[str, Any]:
    """An admitted skill's hash now (and, with ``recheck``, its success table now)."""
    from npigym.skills.library import params_hash, read_info, read_params

    info = read_info(record["skill_path"])
    now = {"params_sha256": params_hash(read_params(info))}
    if recheck:
        now["test"] = greedy_success(info.source, [int(s) for s in record["test"]], episodes,
                                     seed=90_000)
    return now


def write_report(plan: Sequence[Generation], directory: str, state: Dict[str, Any],
                 recheck: bool = False, out: Any = sys.stdout) -> str:
    """``report.md`` (per generation: env steps, wall time, success per size, the skill and
    whether it stayed frozen) and ``report.png`` (greedy success against env steps)."""
    lines = [f"# Skill curriculum: {state.get('plan', '?')}", "",
             "| generation | config | skills bound | status | env steps | train s | "
             "success per size (held-out) | skill | frozen |", "|" + "---|" * 9]
    for gen in plan:
        r = state["generations"].get(gen.name)
        if r is None:
            lines.append(f"| {gen.name} | {gen.config} | {dict(gen.skills) or '-'} | not run |"
                         " | | | | |")
            continue
        steps, seconds = r.get("env_steps"), r.get("train_s")
        if steps is None and r["rounds"]:
            steps, seconds = r["rounds"][-1]["env_steps"], r["rounds"][-1]["train_s"]
        test = ", ".join(f"{k}: {v:.3f}" for k, v in r.get("test", {}).items()) or "-"
        frozen = "-"
        if r["status"] == "admitted":
            now = check_frozen(r, recheck, gen.episodes)
            same = now["params_sha256"] == r["params_sha256"]
            frozen = "hash unchanged" if same else "**hash changed**"
            if "test" in now:
                frozen += "; success now " + ", ".join(f"{k}: {v:.3f}"
                                                       for k, v in now["test"].items())
        lines.append(f"| {gen.name} | {gen.config} | {dict(gen.skills) or '-'} | {r['status']} "
                     f"| {steps or 0:,.0f} | {seconds or 0:.0f} | {test} | "
                     f"{r.get('skill', '-')} | {frozen} |")
    lines += ["", "Env steps and seconds are the generation's training (compile included). "
              "Success is the greedy policy's on fresh instances per size; a generation is "
              "admitted when it reaches its target at its admission sizes. 'frozen' compares "
              "the saved skill's parameter hash now with the one at admission.", "",
              f"![greedy success during training]({REPORT_PNG})", "",
              "Command: `npigym curriculum " + str(state.get("plan")) + f" --dir {directory}"
              + (" --recheck`" if recheck else "`"),
              ""]
    path = os.path.join(directory, REPORT_MD)
    with open(path, "w") as f:
        f.write("\n".join(lines))
    _plot(plan, state, os.path.join(directory, REPORT_PNG))
    print(f"report: {path}", file=out)
    return path


def _plot(plan: Sequence[Generation], state: Dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for gen in plan:
        rounds = state["generations"].get(gen.name, {}).get("rounds", [])
        if rounds:
            ax.plot([r["env_steps"] for r in rounds], [r["success"] for r in rounds], "o-",
                    label=f"{gen.name} ({gen.config}, size {gen.train_size})")
    ax.set_xlabel("env steps (per generation)")
    ax.set_ylabel("greedy success")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _run(args: argparse.Namespace) -> int:
    directory = args.dir or os.path.join("runs", f"curriculum-{os.path.basename(args.plan)}")
    try:
        path = run_plan(args.plan, directory, recheck=args.recheck)
    except (PlanError, ConfigError) as e:
        raise SystemExit(f"npigym curriculum: {e}") from None
    with open(path) as f:
        print(f.read())
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "curriculum", help="learn a plan of skills generation by generation (resumable)",
        description=__doc__.split("\n\n")[1])
    p.add_argument("plan", help=f"a plan YAML file or a built-in plan: {', '.join(PLANS)}")
    p.add_argument("--dir", default=None,
                   help="the plan's directory (default runs/curriculum-PLAN); run the same "
                        "command again to resume")
    p.add_argument("--recheck", action="store_true",
                   help="re-measure every admitted skill's success in the report")
    p.set_defaults(run=_run)
