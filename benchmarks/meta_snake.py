"""Snake 6x6 at the debiasing paper's budget: A2C vs biased vs debiased meta-gradients, and
K-step vs mixed meta-gradients at K = 3.

The runs are four sweeps (``npigym sweep``, resumable: run the same command again after an
interruption), 3 seeds per arm, 75M inner env steps per seed:

    npigym sweep examples/sweeps/snake-meta.yaml --dir runs/sweep-snake-meta   # ~50 min per arm
    npigym sweep examples/sweeps/snake-a2c.yaml --dir runs/sweep-snake-a2c
    npigym sweep examples/sweeps/snake-kstep.yaml --dir runs/sweep-snake-kstep
    npigym sweep examples/sweeps/snake-mixed.yaml --dir runs/sweep-snake-mixed
    python benchmarks/meta_variance.py   # the two K = 3 estimators' variance at their checkpoints

This script reads their trial directories (finished or not) and writes
``benchmarks/results/meta_snake.md`` (+ ``.json``, ``.png``): the final return per arm with the
IQM and a 95 % stratified-bootstrap interval (rliable), the probability of improvement between
arms, the learned discounts, the bias diagnostic (the mean advantage of the outer loss,
``meta_advantage``), learning curves
with interval bands, and the paper's numbers beside them; for the K = 3 arms also the
meta-gradient variance that ``meta_variance.py`` measured (its ``meta_variance.json``).

    python benchmarks/meta_snake.py

A hand-written analysis between the ``analysis`` markers of the existing results file is kept.
"""

from __future__ import annotations

import argparse
import os
import warnings
from typing import Any, Dict, List, Tuple

import numpy as np
from meta_common import RESULTS, command, machine, table, write

from npigym.experiments.config import load_config
from npigym.experiments.logger import read_metrics
from npigym.experiments.train import steps_per_call
from npigym.sweeps.report import load_sweep
from npigym.sweeps.runner import DONE

# The paper's numbers (Bonnet, Midgley & Laterre 2022; its repository's logged CSVs, see
# ../shared/research/metagrad.md 2.4): final return (mean of the last 5 of 200 eval points)
# and final discount, mean +- std over 10 seeds.
# The multi-step paper (Bonnet et al. 2021) gives no return numbers we could retrieve for its
# K-step and mixed arms, only "about 3x less variance at similar or better return".
PAPER = {"none": ("17.3 +- 0.2", "0.800"), "biased": ("24.9 +- 5.9", "0.964 +- 0.024"),
         "debiased": ("34.1 +- 0.2", "0.996 +- 0.001"), "kstep3": ("-", "-"),
         "mixed3": ("'similar or better' than K-step", "-")}
ARMS = (("A2C (gamma fixed at 0.8)", "none"), ("biased meta-gradient", "biased"),
        ("debiased meta-gradient (outer value)", "debiased"),
        ("K-step, K = 3 (debiased)", "kstep3"), ("mixed, K = 3 (uniform, debiased)", "mixed3"))
COLORS = {"none": "C0", "biased": "C1", "debiased": "C2", "kstep3": "C3", "mixed3": "C4"}
FINAL_FRACTION = 0.025  # the paper's last 5 of 200 points
CURVE_POINTS = 60
BEGIN, END = "<!-- analysis:begin -->", "<!-- analysis:end -->"


def inner_steps_per_call(config) -> int:
    """Inner env steps of one logged call (the outer rollouts are not counted, as the paper)."""
    a = config.a2c
    k = config.meta.meta_steps if config.meta.enabled else 1
    return a.updates_per_call * a.num_envs * a.rollout_length * k


def estimator(config) -> str:
    """The arm a run belongs to: none (A2C), biased, debiased, or kstepK / mixedK for the
    meta-gradient through K > 1 inner updates."""
    m = config.meta
    if not m.enabled:
        return "none"
    if m.meta_steps > 1:
        return f"{'mixed' if m.mixing != 'none' else 'kstep'}{m.meta_steps}"
    return m.estimator


def load_arms(dirs: List[str]) -> Tuple[Dict[str, List[Dict[str, Any]]], Dict[str, int]]:
    """``({estimator: [one dict per started seed: config, records]}, {estimator: seeds the
    sweeps plan})`` over the given sweep directories."""
    arms: Dict[str, List[Dict[str, Any]]] = {}
    planned: Dict[str, int] = {}
    for sweep_dir in dirs:
        if not os.path.isdir(sweep_dir):
            continue
        spec, index = load_sweep(sweep_dir)
        for t in spec.trials():
            planned[estimator(t.config)] = planned.get(estimator(t.config), 0) + 1
        for trial_id, entry in sorted(index["trials"].items()):
            run = os.path.join(sweep_dir, entry["run_dir"])
            if not os.path.exists(os.path.join(run, "config.yaml")):
                continue
            config = load_config(os.path.join(run, "config.yaml"))
            records = read_metrics(run)
            if not records:
                continue
            arms.setdefault(estimator(config), []).append(
                {"trial": trial_id, "seed": config.seed, "config": config, "records": records,
                 "status": entry.get("status"), "planned": config.total_env_steps})
    return arms, planned


def series(run: Dict[str, Any], name: str) -> np.ndarray:
    return np.array([float(r.get(name, np.nan)) for r in run["records"]], float)


def inner_steps(run: Dict[str, Any]) -> np.ndarray:
    return np.array([r["call"] for r in run["records"]], float) * inner_steps_per_call(
        run["config"])


def final(values: np.ndarray) -> float:
    n = max(1, round(len(values) * FINAL_FRACTION))
    tail = values[-n:]
    tail = tail[np.isfinite(tail)]
    return float(tail.mean()) if len(tail) else float("nan")


def on_grid(run: Dict[str, Any], name: str, grid: np.ndarray, window: int = 10) -> np.ndarray:
    """The metric at each inner-step point of ``grid``: the mean of the ``window`` calls up to
    it (nan past the run's end)."""
    steps, vals = inner_steps(run), series(run, name)
    out = np.full(len(grid), np.nan)
    for j, s in enumerate(grid):
        upto = np.searchsorted(steps, s, side="right")
        if upto == 0 or (upto == len(steps) and s > steps[-1] * 1.001):
            continue
        out[j] = np.nanmean(vals[max(0, upto - window):upto])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meta", default="runs/sweep-snake-meta", help="the meta arms' sweep")
    parser.add_argument("--a2c", default="runs/sweep-snake-a2c", help="the A2C arm's sweep")
    parser.add_argument("--kstep", default="runs/sweep-snake-kstep", help="the K-step sweep")
    parser.add_argument("--mixed", default="runs/sweep-snake-mixed", help="the mixed sweep")
    parser.add_argument("--reps", type=int, default=5000, help="bootstrap replications")
    parser.add_argument("--out", default="meta_snake")
    args = parser.parse_args()
    with warnings.catch_warnings():
        # rliable passes arch a RandomState, which arch now deprecates (arch >= 6)
        warnings.simplefilter("ignore", FutureWarning)
        report(args)


def report(args: argparse.Namespace) -> None:
    from rliable import library as rly
    from rliable import metrics

    arms, planned_seeds = load_arms([args.meta, args.a2c, args.kstep, args.mixed])
    if not arms:
        raise SystemExit(f"no trial with metrics in {args.meta} or {args.a2c}: run the sweeps "
                         "first (see this script's docstring)")
    order = [(label, est) for label, est in ARMS if est in arms]
    # Only finished seeds (the whole 75M) enter the statistics; unfinished ones are listed.
    done = {est: [r for r in arms[est] if r["status"] == DONE] for _, est in order}
    scores = {est: np.array([[final(series(r, "return"))] for r in done[est]])
              for _, est in order if done[est]}

    def iqm(x):
        return np.array([metrics.aggregate_iqm(x)])

    point, interval = rly.get_interval_estimates(scores, iqm, reps=args.reps,
                                                 random_state=np.random.RandomState(0))
    rows, data = [], {"arms": {}, "command": command()}
    for label, est in order:
        runs = done[est]
        first = arms[est][0]["config"]
        planned = round(arms[est][0]["planned"] * inner_steps_per_call(first)
                        / steps_per_call(first))
        running = [f"s{r['seed']}: {final(series(r, 'return')):.1f} at "
                   f"{inner_steps(r)[-1] / 1e6:.0f}M" for r in arms[est] if r not in runs]
        gammas = [final(series(r, "hp_discount")) if r["config"].meta.enabled
                  else r["config"].a2c.discount for r in runs]
        outer_adv = [float(np.nanmean(series(r, "meta_advantage"))) for r in runs]
        final_adv = [final(series(r, "meta_advantage")) for r in runs]
        lo, hi = interval[est][:, 0] if est in scores else (np.nan, np.nan)
        rows.append({
            "arm": label, "seeds done": f"{len(runs)} of {planned_seeds[est]}",
            "final return per seed": ", ".join(f"{x[0]:.1f}" for x in scores.get(est, [])),
            "IQM [95 % CI]": (f"{point[est][0]:.1f} [{lo:.1f}, {hi:.1f}]" if est in scores
                              else "-"),
            "paper (10 seeds)": PAPER[est][0],
            "final gamma per seed": ", ".join(f"{g:.3f}" for g in gammas),
            "paper gamma": PAPER[est][1],
            "mean outer-loss advantage (whole run / final)": (
                "-" if est == "none" or not runs else
                f"{np.mean(outer_adv):+.3f} / {np.mean(final_adv):+.3f}"),
            "unfinished (return at inner steps)": "; ".join(running) or "-",
            "wall min per seed": ", ".join(f"{r['records'][-1]['wall_time'] / 60:.0f}"
                                           for r in runs),
        })
        if est not in scores:
            continue
        data["arms"][est] = {
            "label": label, "seeds": [r["seed"] for r in runs],
            "final_return": scores[est][:, 0].tolist(), "planned_inner_steps": planned,
            "iqm": float(point[est][0]), "ci": [float(lo), float(hi)], "final_gamma": gammas,
            "outer_advantage_mean": outer_adv, "outer_advantage_final": final_adv,
            "unfinished": running}

    # Probability of improvement (rliable; P(X > Y) over the seed pairs, with a bootstrap CI).
    pairs = [(a, b) for a, b in (("debiased", "biased"), ("biased", "none"),
                                 ("debiased", "none"), ("mixed3", "kstep3"),
                                 ("kstep3", "debiased"), ("mixed3", "debiased"))
             if a in scores and b in scores]
    poi_rows = []
    if pairs:
        pair_scores = {f"{a} > {b}": (scores[a], scores[b]) for a, b in pairs}
        p_point, p_int = rly.get_interval_estimates(
            pair_scores, metrics.probability_of_improvement, reps=min(args.reps, 2000),
            random_state=np.random.RandomState(1))
        for (a, b) in pairs:
            k = f"{a} > {b}"
            ia, ib = interval[a][:, 0], interval[b][:, 0]
            poi_rows.append({"comparison": f"P({a} > {b})",
                             "estimate [95 % CI]": f"{float(np.squeeze(p_point[k])):.2f} "
                             f"[{p_int[k][0].item():.2f}, {p_int[k][1].item():.2f}]",
                             "IQM intervals overlap": "yes" if ia[0] <= ib[1] else "no"})
        data["probability_of_improvement"] = poi_rows
    ordering = all(k in scores for k in ("none", "biased", "debiased"))
    verdict = ""
    if ordering:
        lo = {k: interval[k][0, 0] for k in scores}
        hi = {k: interval[k][1, 0] for k in scores}
        holds = point["none"][0] < point["biased"][0] < point["debiased"][0]
        separate = hi["none"] < lo["biased"] and hi["biased"] < lo["debiased"]
        verdict = ("**Ordering A2C < biased < debiased by IQM: "
                   f"{'holds' if holds else 'does not hold'}; with non-overlapping 95 % "
                   f"intervals: {'yes' if separate else 'no'}.**")
        data["ordering_holds"], data["intervals_separate"] = bool(holds), bool(separate)

    plot_png = plot(arms, order, args.out)
    analysis = ""
    old = os.path.join(RESULTS, f"{args.out}.md")
    if os.path.exists(old):
        text = open(old).read()
        if BEGIN in text and END in text:
            analysis = text[text.index(BEGIN):text.index(END) + len(END)]
    analysis = analysis or f"{BEGIN}\n(analysis to be written once the runs are done)\n{END}"

    md = [
        "# Snake 6x6: A2C vs biased vs debiased meta-gradient, and K-step vs mixed, at the "
        "paper's budget", "",
        "Commands (each resumes when run again):", "",
        "```bash",
        "npigym sweep examples/sweeps/snake-meta.yaml --dir runs/sweep-snake-meta  "
        "# biased + debiased, 3 seeds each",
        "npigym sweep examples/sweeps/snake-a2c.yaml --dir runs/sweep-snake-a2c    # A2C, 3 seeds",
        "npigym sweep examples/sweeps/snake-kstep.yaml --dir runs/sweep-snake-kstep  "
        "# K-step, K = 3, 3 seeds",
        "npigym sweep examples/sweeps/snake-mixed.yaml --dir runs/sweep-snake-mixed  "
        "# mixed, K = 3, 3 seeds",
        "python benchmarks/meta_variance.py  # variance of both K = 3 estimators at the "
        "checkpoints",
        data["command"],
        "```", "",
        f"Machine: {machine()}", "",
        "Each seed runs 75M inner env steps; only finished seeds enter the statistics. "
        "Final return: the mean training-episode return over the last 2.5 % of each run's "
        "logged calls (the paper: the last 5 of its 200 eval points, 2.5 %). IQM and its 95 % "
        f"stratified-bootstrap interval over seeds: rliable, {args.reps} replications. With 3 "
        "seeds the IQM is the mean. Inner env steps exclude the meta arms' outer rollouts, as "
        "the paper counts them. The bias diagnostic is the paper's: the batch mean of the "
        "outer loss's advantage (`meta_advantage`), about 0 for an unbiased outer critic; "
        "the paper's Snake plots show +0.4 to +0.6 for the biased estimator.", "",
        table(rows, list(rows[0])), "",
        verdict, "",
    ]
    if poi_rows:
        md += ["Probability of improvement (rliable), final return:", "",
               table(poi_rows, list(poi_rows[0])), ""]
    md += multistep_section(scores, point, interval, data)
    md += ["Curves: mean over seeds with a 95 % bootstrap band; unfinished seeds count up to "
           "where they are.", "",
           f"![return, discount and outer advantage]({os.path.basename(plot_png)})", "",
           analysis, "", SETTINGS]
    path = write(args.out, "\n".join(md) + "\n", data)
    print("\n".join(md[:-3]))
    print(f"\nwrote {path} and {plot_png}")


def multistep_section(scores, point, interval, data) -> List[str]:
    """Mixed vs K-step at K = 3: final return (from the table above) and the meta-gradient
    variance across independent batches at the runs' checkpoints (``meta_variance.json``)."""
    if not any(k in scores for k in ("kstep3", "mixed3")):
        return []
    lines = ["## Mixed vs K-step at K = 3", ""]
    for est, label in (("kstep3", "K-step"), ("mixed3", "mixed")):
        if est in scores:
            lo, hi = interval[est][:, 0]
            lines.append(f"- {label}: final return IQM {point[est][0]:.1f} [{lo:.1f}, {hi:.1f}] "
                         f"over {len(scores[est])} seeds, 75M inner env steps each.")
    path = os.path.join(RESULTS, "meta_variance.json")
    rows = []
    if os.path.exists(path):
        import json

        with open(path) as f:
            saved = json.load(f)
        rows = [r for r in saved.get("rows", []) if r.get("trained arm", "-") != "-"]
        theta0 = [r for r in saved.get("rows", []) if r.get("trained arm", "-") == "-"]
    if rows:
        ratios = np.array([r["ratio"] for r in rows])
        data["variance_ratio_kstep_over_mixed"] = {
            "per_checkpoint": ratios.tolist(),
            "geometric_mean": float(np.exp(np.log(ratios).mean()))}
        lines += [
            f"- **Meta-gradient variance** (`meta_variance.py`, [meta_variance.md]"
            f"(meta_variance.md)): at {len(rows)} trained checkpoints the K-step estimator's "
            f"variance is **{data['variance_ratio_kstep_over_mixed']['geometric_mean']:.2f}x** "
            f"the mixed one's (geometric mean; per checkpoint {ratios.min():.2f}x to "
            f"{ratios.max():.2f}x; by squared median absolute deviations "
            f"{np.exp(np.mean([np.log(r['robust ratio (MAD^2)']) for r in rows])):.2f}x; "
            f"{saved['args']['samples']} paired samples per estimator at each, the same "
            "batches for both)"
            + (f"; at theta_0 {theta0[0]['ratio']:.2f}x" if theta0 else "")
            + ". The multi-step paper reports about 3x."]
    else:
        lines.append("- Meta-gradient variance: not measured yet (`python "
                     "benchmarks/meta_variance.py` once the K = 3 sweeps have checkpoints).")
    return [*lines, ""]


def plot(arms: Dict[str, List[Dict[str, Any]]], order, name: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    longest = max(inner_steps(r)[-1] for runs in arms.values() for r in runs)
    grid = np.linspace(longest / CURVE_POINTS, longest, CURVE_POINTS)
    panels = (("return", "training-episode return"), ("hp_discount", "discount (learned)"),
              ("meta_advantage", "mean outer-loss advantage (bias diagnostic)"))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    rng = np.random.RandomState(2)
    for ax, (metric, title) in zip(axes, panels):
        for label, est in order:
            curves = np.stack([on_grid(r, metric, grid) for r in arms[est]])
            if np.all(np.isnan(curves)):
                continue
            mean = np.nanmean(curves, axis=0)
            # Bootstrap over seeds, per point: a 95 % band for the mean curve.
            boots = np.stack([np.nanmean(curves[rng.randint(0, len(curves), len(curves))], 0)
                              for _ in range(500)])
            lo, hi = np.nanpercentile(boots, [2.5, 97.5], axis=0)
            color = COLORS[est]  # the same in every panel (A2C has no discount curve)
            ax.plot(grid / 1e6, mean, label=label, color=color)
            ax.fill_between(grid / 1e6, lo, hi, alpha=0.25, color=color)
        ax.set_title(title)
        ax.set_xlabel("inner env steps (M)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(RESULTS, f"{name}.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


SETTINGS = """## Settings, and where they differ from the paper

The preset `snake-meta` (`npigym/experiments/config.py`) holds the paper's settings: Jumanji's
Snake on a 6x6 board with a 500-step limit (the paper's `Snake-6x6-v0`, jumanji 0.1.3), 512 envs
x 5-step rollouts, RMSProp 5e-4 with decay 0.9 and no gradient clipping, discount from 0.8
(fixed for A2C), lambda 0.95, costs pg 1 / value 0.5 / entropy 0.01, outer discount and lambda
1, only the discount meta-learned (through a sigmoid), the meta-gradient through one inner
update on a fresh outer rollout, meta Adam 3e-3 with the meta-gradient clipped at norm 0.1;
separate actor, critic and outer-critic networks. The differences:

- **Networks**: MLPs on the flattened 6x6x5 board (policy 64-64, value 128-128), where the
  paper puts two small convolutions (32 channels, 2x2, strides 2 and 1) in front of the same
  MLPs. On this 2-core CPU that makes the meta-gradient update 2-3x faster
  (`train_throughput.md`), which is what puts 75M steps per seed within an hour.
- **Meta Adam's epsilon**: eps_root 1e-20 and eps 0 (`MetaGradientConfig`'s defaults) where the
  paper's code has eps_root 1e-8. The meta-gradients here are about 5e-7: with eps_root 1e-8
  the denominator's floor of 1e-4 would shrink each meta step about 200-fold, and the discount
  could move at most about 0.4 in logit over the 29 K updates.
- RMSProp's epsilon is 1e-5; today's jumanji Snake has an action mask (the move back into
  the neck), which the policy uses.
- Returns are those of the training episodes (the stochastic policy, as the paper's eval).
- 3 seeds per arm, not 10.
"""


if __name__ == "__main__":
    main()
