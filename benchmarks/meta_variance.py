"""Variance of K-step vs mixed meta-gradients on Snake at a fixed theta.

For K = 1, 3, 5: draw N independent meta-gradients (fresh env starts and sampling keys, same
parameters theta_0 and meta-parameters) of the debiased estimator with respect to the discount's
eta, for the K-step estimator (outer loss after the K-th update) and the uniformly mixed one
(mean of the 1..K-step outer losses from the same unroll); report mean, variance and their
ratio. Bonnet et al. (2021) report about 3x less variance from mixing on Snake.

    python benchmarks/meta_variance.py --samples 16 --envs 32
"""

from __future__ import annotations

import argparse
import time

import jax
import jumanji
import numpy as np
from meta_common import command, machine, table, write

from npigym.agents.actor_critic import A2CConfig, init_actor
from npigym.agents.networks import NetworkConfig, make_network
from npigym.meta_gradient import MetaGradientConfig, make_a2c_meta_train, meta_gradient_samples

NET = NetworkConfig(core="none", encoder_layers=(64,), head_layers=(64,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--envs", type=int, default=32)
    parser.add_argument("--rollout", type=int, default=5)
    parser.add_argument("--board", type=int, default=6)
    parser.add_argument("--ks", default="1,3,5")
    args = parser.parse_args()
    env = jumanji.make("Snake-v1", num_rows=args.board, num_cols=args.board)
    network = make_network(env, NET)
    a2c = A2CConfig(num_envs=args.envs, rollout_length=args.rollout, optimizer="rmsprop",
                    learning_rate=5e-4, discount=0.8, gae_lambda=0.95, entropy_cost=0.01,
                    value_cost=0.5, outer_discount=1.0, outer_lambda=1.0)
    rows = []
    for k in [int(x) for x in args.ks.split(",")]:
        for mixing in (("none",) if k == 1 else ("none", "uniform")):
            meta = MetaGradientConfig(estimator="debiased", meta_steps=k, mixing=mixing)
            trainer = make_a2c_meta_train(env, network, a2c, meta)
            state = trainer.init(jax.random.PRNGKey(0))  # theta_0: the same for every row
            keys = jax.random.split(jax.random.PRNGKey(1), 2 * args.samples)
            actors = jax.vmap(lambda key, e=trainer.env: init_actor(e, network, key, args.envs))(
                keys[: args.samples])
            start = time.perf_counter()
            grads = jax.jit(lambda a, ks, t=trainer, s=state: meta_gradient_samples(
                t.meta_loss, s.meta_params, s.base_hyper, s.params, s.opt_state, a, ks))(
                    actors, keys[args.samples:])
            g = np.asarray(grads["discount"], np.float64)
            rows.append({"K": k, "estimator": "K-step" if mixing == "none" else "mixed "
                         "(uniform)", "mean": g.mean(), "variance": g.var(ddof=1),
                         "std / abs(mean)": g.std(ddof=1) / (abs(g.mean()) + 1e-30),
                         "seconds": round(time.perf_counter() - start, 1)})
            print(rows[-1], flush=True)
    for r in rows:
        base = next(x for x in rows if x["K"] == r["K"] and x["estimator"] == "K-step")
        r["K-step var / this var"] = base["variance"] / r["variance"]
    md = markdown(vars(args), rows, command(), machine())
    print(write("meta_variance", md, dict(args=vars(args), rows=rows)))
    print(md)


COLUMNS = ["K", "estimator", "mean", "variance", "std / abs(mean)", "K-step var / this var",
           "seconds"]


def markdown(args, rows, cmd: str, mach: str) -> str:
    """The results page from the arguments (a dict) and rows (also what the json holds)."""
    return (f"# Meta-gradient variance on Snake ({args['board']}x{args['board']}): K-step vs "
            f"mixed\n\nCommand: `{cmd}`\n\nMachine: {mach}\n\n"
            f"Debiased estimator, d L / d eta_discount at a fixed untrained theta_0 (gamma 0.8, "
            f"RMSProp 5e-4 inner), {args['samples']} independent samples of {args['envs']} "
            f"envs x {args['rollout']} steps per rollout.\n\n" + table(rows, COLUMNS) + "\n")


if __name__ == "__main__":
    main()
