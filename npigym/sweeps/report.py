"""``npigym sweep report SWEEP_DIR``: what a sweep found, with intervals a reader can trust.

Per config (a setting of the axes, over its seeds): the interquartile mean and the mean of the
trials' final metric with 95 % stratified-bootstrap confidence intervals, the probability that
the best config improves on each of the next ones, learning curves (IQM over seeds, with the
same intervals) and the best config as a ready ``npigym train`` command. The statistics are
rliable's (Agarwal et al., 2021): with few seeds a mean and a standard deviation overstate what
is known, and rliable's IQM and bootstrap are what the field reads.

Writes ``SWEEP_DIR/report.md``, ``report_scores.png`` and ``report_curves.png``.
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from npigym.experiments.logger import read_metrics
from npigym.sweeps.runner import DONE, SPEC_FILE, config_overrides, read_index
from npigym.sweeps.spec import SweepError, from_mapping

REPORT = "report.md"
SCORES_PNG = "report_scores.png"
CURVES_PNG = "report_curves.png"
CURVE_POINTS = 20


def _rliable():
    try:
        from rliable import library as rly
        from rliable import metrics
    except ImportError:
        raise SweepError("the sweep report needs rliable: pip install 'npigym[sweep]'") from None
    return rly, metrics


def _iqm_and_mean(scores: np.ndarray) -> np.ndarray:
    _, metrics = _rliable()
    return np.array([metrics.aggregate_iqm(scores), metrics.aggregate_mean(scores)])


def load_sweep(sweep_dir: str) -> Tuple[Any, Dict[str, Any]]:
    """The sweep's spec (as resolved when it ran) and its index."""
    path = os.path.join(sweep_dir, SPEC_FILE)
    if not os.path.exists(path):
        raise SweepError(f"{sweep_dir} is not a sweep directory (no {SPEC_FILE})")
    with open(path) as f:
        raw = yaml.safe_load(f)
    raw.pop("digest", None)
    return from_mapping(raw), read_index(sweep_dir)


def _curve(records: Sequence[Dict[str, Any]], name: str, window: int,
           grid: np.ndarray) -> np.ndarray:
    """The metric at each env-step of ``grid``: the mean of the ``window`` calls up to it."""
    steps = np.array([r["env_steps"] for r in records], float)
    vals = np.array([r.get(name, math.nan) if isinstance(r.get(name), (int, float)) else math.nan
                     for r in records], float)
    out = np.full(len(grid), math.nan)
    for j, s in enumerate(grid):
        upto = np.searchsorted(steps, s, side="right")
        tail = vals[max(0, upto - window):upto]
        tail = tail[np.isfinite(tail)]
        if len(tail):
            out[j] = tail.mean()
    return out


def report(sweep_dir: str, reps: int = 2000, top: int = 4, seed: int = 0) -> str:
    """Write the report; returns the Markdown's path.

    Args:
        sweep_dir: a sweep directory (``npigym sweep``'s ``--dir``).
        reps: bootstrap replications.
        top: configs compared by probability of improvement (the best against the next).
        seed: the bootstrap's random seed (a report is reproducible).
    """
    import warnings

    with warnings.catch_warnings():
        # rliable passes arch a RandomState, which arch now deprecates (arch >= 6)
        warnings.simplefilter("ignore", FutureWarning)
        return _report(sweep_dir, reps, top, seed)


def _report(sweep_dir: str, reps: int, top: int, seed: int) -> str:
    rly, metrics = _rliable()
    spec, index = load_sweep(sweep_dir)
    metric = spec.metric
    by_config: Dict[str, List[Dict[str, Any]]] = {}
    for trial_id, r in index["trials"].items():
        by_config.setdefault(r["config_id"], []).append({**r, "trial_id": trial_id})
    scores: Dict[str, np.ndarray] = {}
    curves: Dict[str, np.ndarray] = {}
    status: Dict[str, str] = {}
    max_steps = max([float(r.get("env_steps") or 0) for r in index["trials"].values()] + [1.0])
    grid = np.linspace(max_steps / CURVE_POINTS, max_steps, CURVE_POINTS)
    for cid, rs in by_config.items():
        done = [r for r in rs if r["status"] == DONE and math.isfinite(r.get("value", math.nan))]
        status[cid] = f"{len(done)}/{len(rs)}"
        if not done:
            continue
        scores[cid] = np.array([[r["value"]] for r in done])
        curves[cid] = np.stack([_curve(read_metrics(os.path.join(sweep_dir, r["run_dir"])),
                                       metric.name, metric.last, grid) for r in done])[:, None]
    if not scores:
        raise SweepError(f"{sweep_dir}: no finished trial yet (run the sweep first)")
    rng = np.random.RandomState(seed)
    point, interval = rly.get_interval_estimates(scores, _iqm_and_mean, reps=reps,
                                                 random_state=rng)
    sign = 1.0 if metric.mode == "max" else -1.0
    order = sorted(scores, key=lambda c: (-sign * point[c][0], -sign * point[c][1]))
    best = order[0]
    values = dict(next(r for r in by_config[best])["values"])

    # Probability of improvement of the best over each of the next configs (P(X > Y); for a
    # metric to minimise the scores are negated, so it reads "better than" either way).
    poi_rows = []
    if len(order) > 1:
        pairs = {f"{best} vs {c}": (sign * scores[best], sign * scores[c])
                 for c in order[1:top]}
        poi, poi_ci = rly.get_interval_estimates(
            pairs, lambda x, y: np.array([metrics.probability_of_improvement(x, y)]),
            reps=reps, random_state=rng)
        poi_rows = [(k, float(poi[k][0]), poi_ci[k][:, 0]) for k in pairs]

    curve_point, curve_ci = rly.get_interval_estimates(
        {c: np.nan_to_num(v, nan=0.0) for c, v in curves.items() if c in order[:top]},
        lambda x: np.array([metrics.aggregate_iqm(x[..., j]) for j in range(x.shape[-1])]),
        reps=max(200, reps // 10), random_state=rng)
    _plot_scores(sweep_dir, order, point, interval, metric.name)
    _plot_curves(sweep_dir, grid, curve_point, curve_ci, metric.name)

    seeds = sorted({r["seed"] for r in by_config[best]})
    words = [*config_overrides(spec, values), f"seed={seeds[0]}", f"num_seeds={len(seeds)}"]
    words += [f"{k}={v}" for k, v in spec.budget]
    base = f"--config {spec.base} " if spec.base else ""
    command = f"npigym train {base}" + " ".join(f"'{w}'" if any(c in w for c in "[], ")
                                               else w for w in words)
    n_trials = len(index["trials"])
    finished = sum(r["status"] == DONE for r in index["trials"].values())
    lines = [
        f"# Sweep {spec.name}",
        "",
        f"{finished}/{n_trials} trials finished; {len(by_config)} configs x "
        f"{len(spec.seeds)} seeds; budget {dict(spec.budget) or 'the base config'}; "
        f"ranked by **{metric.name}** ({metric.mode}; each trial's mean over its last "
        f"{metric.last} logged calls). Intervals: 95 % stratified bootstrap ({reps} "
        f"replications, rliable).",
        "",
        f"| rank | config | IQM {metric.name} [95 % CI] | mean [95 % CI] | seeds |",
        "|---|---|---|---|---|",
    ]
    for rank, c in enumerate(order, 1):
        lo, hi = interval[c][0], interval[c][1]
        lines.append(f"| {rank} | {c} | {point[c][0]:.4f} [{lo[0]:.4f}, {hi[0]:.4f}] | "
                     f"{point[c][1]:.4f} [{lo[1]:.4f}, {hi[1]:.4f}] | {status[c]} |")
    missing = [c for c in by_config if c not in scores]
    if missing:
        lines += ["", f"No finished seed yet: {', '.join(missing)}."]
    if poi_rows:
        lines += ["", "## Probability of improvement", "",
                  "P(a run of the best config scores better than a run of the other), "
                  "with its 95 % CI (0.5: indistinguishable).", "",
                  "| pair | P(improvement) [95 % CI] |", "|---|---|"]
        lines += [f"| {k} | {p:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] |" for k, p, ci in poi_rows]
    failed = {k: r for k, r in index["trials"].items() if r["status"] not in (DONE,)}
    if failed:
        lines += ["", "## Trials not finished", ""]
        lines += [f"- {k}: {r['status']}" + (f" ({r['error']})" if r.get("error") else "")
                  for k, r in sorted(failed.items())]
    lines += ["", "## The best config", "", "```bash", command, "```", "",
              f"![final {metric.name} per config]({SCORES_PNG})", "",
              f"![learning curves of the top configs]({CURVES_PNG})", ""]
    path = os.path.join(sweep_dir, REPORT)
    from npigym.experiments.run_dir import atomic_write

    atomic_write(path, "\n".join(lines))
    return path


def _plot_scores(sweep_dir: str, order: Sequence[str], point: Dict[str, np.ndarray],
                 interval: Dict[str, np.ndarray], name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 0.45 * len(order) + 1.2), sharey=True)
    y = np.arange(len(order))[::-1]
    for k, (ax, title) in enumerate(zip(axes, ("IQM", "mean"))):
        for yi, c in zip(y, order):
            lo, hi = interval[c][0][k], interval[c][1][k]
            ax.barh(yi, hi - lo, left=lo, height=0.6, alpha=0.6, color="C0")
            ax.plot([point[c][k]] * 2, [yi - 0.3, yi + 0.3], color="k", lw=2)
        ax.set_title(f"{title} {name} (95 % CI)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(order, fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(sweep_dir, SCORES_PNG), dpi=100)
    plt.close(fig)


def _plot_curves(sweep_dir: str, grid: np.ndarray, point: Dict[str, np.ndarray],
                 interval: Dict[str, np.ndarray], name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for k, c in enumerate(point):
        ax.plot(grid, point[c], label=c, color=f"C{k}")
        ax.fill_between(grid, interval[c][0], interval[c][1], alpha=0.2, color=f"C{k}")
    ax.set_xlabel("env steps per trial")
    ax.set_ylabel(f"IQM {name} over seeds")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(sweep_dir, CURVES_PNG), dpi=100)
    plt.close(fig)


def print_report(sweep_dir: str, out: Optional[Any] = None) -> str:
    path = report(sweep_dir)
    with open(path) as f:
        text = f.read()
    print(text.split("## Probability")[0].rstrip(), file=out)
    print(f"\nreport: {path}", file=out)
    return path
