"""The debiasing paper's toy problem: A2C (fixed gamma) vs biased vs debiased meta-gradients.

Bonnet, Midgley & Laterre (2022), Discounting Chain: with the inner critic in the outer loss
(biased), the learned discount collapses to its lower bound 0.9 and the return stays at 1.0;
with the outer value function (debiased) the discount rises toward 1 and the return climbs
toward the optimum 1.1 (the published runs: about 1.08 after 50k updates, 10 seeds).

Settings are the paper's (``npigym.meta_gradient.toy``): linear softmax policy, exact values,
gamma from 0.95 in (0.9, 1), gamma' = 1, lambda = lambda' = 0, entropy 0.005, SGD 0.5 inner,
Adam 0.1 meta, 128 envs, 100-step rollouts. Seeds are vmapped in one program per agent.

    python benchmarks/meta_discounting_chain.py --updates 5000 --seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import numpy as np
from meta_common import RESULTS, command, machine, table, write

import npigym
from npigym.meta_gradient.toy import TOY_A2C, TOY_META, greedy_context_probs, make_toy_train

AGENTS = (("A2C (fixed gamma 0.95)", "none"), ("biased MG", "biased"),
          ("debiased MG (outer value)", "debiased"))


def run(estimator: str, updates: int, seeds: int, per_call: int):
    env = npigym.make("DiscountingChain-v0")
    trainer = make_toy_train(env, dataclasses.replace(TOY_A2C, updates_per_call=per_call),
                             dataclasses.replace(TOY_META, estimator=estimator))
    state = jax.jit(jax.vmap(trainer.init))(jax.random.split(jax.random.PRNGKey(0), seeds))
    train = jax.jit(jax.vmap(trainer.train))
    curve = []
    start = time.perf_counter()
    for call in range(updates // per_call):
        state, m = train(state)
        m = jax.device_get(m)
        # Per seed: episodes finished in this call's inner and outer rollouts.
        ret = m["return_sum"].sum(1) / np.maximum(m["episodes"].sum(1), 1)
        curve.append(dict(update=(call + 1) * per_call, return_mean=float(ret.mean()),
                          return_std=float(ret.std()),
                          gamma_mean=float(m["hp_discount"][:, -1].mean()),
                          gamma_std=float(m["hp_discount"][:, -1].std()),
                          outer_adv_first=float(m.get("meta_advantage_first",
                                                      np.zeros(1)).mean()),
                          p_best=float(np.mean(jax.vmap(greedy_context_probs)(
                              state.params)[:, 3]))))
    return curve, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--per-call", type=int, default=50)
    args = parser.parse_args()
    results, rows = {}, []
    for label, estimator in AGENTS:
        curve, seconds = run(estimator, args.updates, args.seeds, args.per_call)
        results[label] = dict(curve=curve, seconds=seconds)
        last = curve[-max(1, len(curve) // 10):]  # the last 10 % of training
        rows.append({"agent": label, "updates": args.updates,
                     "final return": float(np.mean([c["return_mean"] for c in last])),
                     "final gamma": float(np.mean([c["gamma_mean"] for c in last])),
                     "gamma std over seeds": last[-1]["gamma_std"],
                     "mean first-step outer advantage (first 10 %)": float(np.mean(
                         [c["outer_adv_first"] for c in curve[:max(1, len(curve) // 10)]])),
                     "P(1.1 arm) at step 0": last[-1]["p_best"],
                     "wall s": round(seconds, 1)})
        print(label, rows[-1], flush=True)
    cols = list(rows[0])
    md = (f"# Discounting Chain: A2C vs biased vs debiased meta-gradient\n\n"
          f"Command: `{command()}`\n\nMachine: {machine()}\n\n"
          f"{args.seeds} seeds (vmapped), {args.updates} updates each (the paper: 10 seeds, "
          f"50,000 updates). Final = mean over the last 10 % of updates, over seeds.\n\n"
          + table(rows, cols) + "\n\n![curves](meta_discounting_chain.png)\n")
    plot(results)
    print(write("meta_discounting_chain", md, dict(args=vars(args), rows=rows,
                                                    curves=results)))
    print(md)


def plot(results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, r in results.items():
        c = r["curve"]
        x = [p["update"] for p in c]
        for ax, key in zip(axes, ("return", "gamma")):
            m = np.array([p[f"{key}_mean"] for p in c])
            s = np.array([p[f"{key}_std"] for p in c])
            ax.plot(x, m, label=label)
            ax.fill_between(x, m - s, m + s, alpha=0.2)
    axes[0].set_ylabel("episode return")
    axes[1].set_ylabel("discount gamma")
    for ax in axes:
        ax.set_xlabel("updates")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{RESULTS}/meta_discounting_chain.png", dpi=100)


if __name__ == "__main__":
    main()
