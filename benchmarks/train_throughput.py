"""Training throughput: env steps per second of the whole training loop (env + network +
update), measured in one run next to the env alone and next to Jumanji's own A2C trainer.

Rows (all in one process, so their ratios are comparable on this noisy shared CPU):

1. ``Addition-v0`` env only: the training batch (``num_envs`` envs, auto-reset, random valid
   actions) stepped in a jitted ``lax.scan``, no network.
2. ``Addition-v0`` training, the default network and A2C settings (``TrainConfig()``), and the
   macro-mode preset's smaller network: one jitted call = ``updates_per_call`` updates.
3. ``Snake-v1`` training with our A2C and a network of the size of Jumanji's Snake baseline
   (conv 32-32 channels, 2x2 kernels, strides 2 and 1; MLP 64-64; feed-forward), at Jumanji's
   batch (128 envs x 20 steps per update).
4. ``Snake-v1`` with Jumanji's own trainer (``jumanji.training``: ``A2CAgent``,
   ``pmap(lax.scan(run_epoch))`` as its ``train.py`` runs it), config ``configs/env/snake.yaml``.
   Its logging dependencies (tensorboardX's neptune/hydra companions) are stubbed as in the
   research notes' ``time_jumanji_a2c.py``; ``jax.device_put_replicated`` (removed in jax 0.10)
   is shimmed.
5. Why the CNN is written as patches + matmul: the gradient of a conv torso inside
   ``lax.scan`` against the same at top level, for ``hk.Conv2D``, ``PatchConv2D`` and its
   earlier version (patches from ``lax.conv_general_dilated_patches``).
6. The full meta-gradient update (``meta.estimator=debiased``: outer value head, one inner
   update, fresh outer rollout) on Snake 6x6 at the debiasing paper's 512 envs x 5-step
   rollouts (preset ``snake-meta``): before (the ``snake`` preset's conv torso with the
   earlier ``PatchConv2D``, ``meta.remat`` on, as the first Snake meta-gradient runs had it), each
   change on its own, and after (the preset: separate actor, critic and outer-critic MLPs on
   the flattened board, no remat; also with 3 seeds vmapped), plus the preset's A2C arm
   (``meta.estimator=none``) for scale. Throughput is given in inner env steps per second
   (the paper's count: 75M of them per run) and in all env steps
   (inner and outer rollouts, what ``total_env_steps`` counts).

Each training row: one warm-up call (compile), then the median of ``--repeats`` timed calls.

Usage::

    .venv/bin/python benchmarks/train_throughput.py
    .venv/bin/python benchmarks/train_throughput.py --quick   # smoke run, meaningless numbers
    # Only row 6, written into its own section of the results file (the rest is kept):
    .venv/bin/python benchmarks/train_throughput.py --only-meta-snake
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import os
import platform
import shlex
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import jumanji
import numpy as np

import npigym
import npigym.agents.networks as networks_module
from npigym.agents.actor_critic import A2CConfig, make_train
from npigym.agents.networks import NetworkConfig, PatchConv2D, make_network
from npigym.agents.random import program_action_from_word
from npigym.envs.machine.generator import hash_stream, seed_word
from npigym.experiments.config import TrainConfig, load_config
from npigym.meta_gradient import make_a2c_meta_train
from npigym.wrappers.auto_reset import VmapAutoResetWrapper

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn: Callable[[], Any], repeats: int) -> Dict[str, float]:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return {"first": first, "median": statistics.median(times), "times": times}


def param_count(params: Any) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def env_only(env: Any, num_envs: int, steps: int, repeats: int) -> Dict[str, Any]:
    """The training batch's env work alone: auto-reset envs, random valid actions."""
    wrapped = VmapAutoResetWrapper(env)  # as the trainer's (actor_critic.make_env)
    state, ts = jax.jit(wrapped.reset)(jax.random.split(jax.random.PRNGKey(0), num_envs))

    @jax.jit
    def run(state, obs, key):
        def body(carry, i):
            state, obs = carry
            words = hash_stream(seed_word(key), i * num_envs + jnp.arange(num_envs))
            action = jax.vmap(lambda w, o: program_action_from_word(env, w, o))(words, obs)
            state, ts = wrapped.step(state, action)
            return (state, ts.observation), ts.reward
        (state, obs), r = jax.lax.scan(body, (state, obs), jnp.arange(steps))
        return state, r

    t = timed(lambda: run(state, ts.observation, jax.random.PRNGKey(1)), repeats)
    return {"steps": num_envs * steps, **t}


def ours(env: Any, network_config: NetworkConfig, a2c: A2CConfig, repeats: int
         ) -> Dict[str, Any]:
    network = make_network(env, network_config)
    state, t = time_trainer(make_train(env, network, a2c), repeats)
    return {"steps": a2c.num_envs * a2c.rollout_length * a2c.updates_per_call,
            "params": param_count(state.params), **t}


def jumanji_a2c(learner_steps: int, epochs: int) -> Dict[str, Any]:
    """Jumanji's A2C on Snake-v1 as ``jumanji/training/train.py`` runs it (no hydra)."""
    for name in ("tensorboardX", "neptune", "omegaconf"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["omegaconf"].DictConfig = dict  # type hints only
    sys.modules["neptune"].new = types.ModuleType("neptune.new")
    if not hasattr(jax, "device_put_replicated"):
        jax.device_put_replicated = lambda x, devices: jax.tree.map(  # type: ignore
            lambda a: jnp.stack([jnp.asarray(a)] * len(devices)), x)
    from types import SimpleNamespace

    from jumanji.training.setup_train import setup_agent, setup_env, setup_training_state

    ns = SimpleNamespace
    cfg = ns(agent="a2c", seed=0, env=ns(
        name="snake", registered_version="Snake-v1",
        network=ns(num_channels=32, policy_layers=[64, 64], value_layers=[128, 128]),
        training=ns(num_epochs=epochs, num_learner_steps_per_epoch=learner_steps, n_steps=20,
                    total_batch_size=128),
        a2c=ns(normalize_advantage=False, discount_factor=0.997, bootstrapping_factor=0.95,
               l_pg=1.0, l_td=1.0, l_en=0.01, learning_rate=3e-4)))
    env = setup_env(cfg)
    agent = setup_agent(cfg, env)
    state = setup_training_state(env, agent, jax.random.PRNGKey(0))

    @functools.partial(jax.pmap, axis_name="devices")
    def epoch(state):
        state, metrics = jax.lax.scan(lambda s, _: agent.run_epoch(s), state, None,
                                      learner_steps)
        return state, metrics

    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        state, metrics = epoch(state)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    params = param_count(jax.tree.map(lambda x: x[0], state.params_state.params))
    return {"steps": 20 * 128 * learner_steps, "first": times[0],
            "median": statistics.median(times[1:]), "times": times[1:], "params": params}


class DilatedPatchConv2D(hk.Module):
    """``PatchConv2D`` as it was before the slices: patches from
    ``lax.conv_general_dilated_patches`` (a convolution itself), then the same matmul. Same
    parameters and result; kept here for the before/after rows."""

    def __init__(self, channels: int, kernel: int, stride: int, name: Optional[str] = None):
        super().__init__(name=name)
        self.channels, self.kernel, self.stride = channels, kernel, stride

    def __call__(self, x: Any) -> Any:
        in_channels = x.shape[-1]
        w = hk.get_parameter("w", (self.kernel, self.kernel, in_channels, self.channels),
                             x.dtype, init=hk.initializers.VarianceScaling(1.0, "fan_avg",
                                                                           "uniform"))
        b = hk.get_parameter("b", (self.channels,), x.dtype, init=jnp.zeros)
        patches = jax.lax.conv_general_dilated_patches(
            x, (self.kernel, self.kernel), (self.stride, self.stride), "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        matrix = jnp.transpose(w, (2, 0, 1, 3)).reshape(-1, self.channels)
        return patches @ matrix + b


@contextlib.contextmanager
def conv_class(cls: Any):
    """Build networks with ``cls`` in place of ``PatchConv2D`` inside the block."""
    saved = networks_module.PatchConv2D
    networks_module.PatchConv2D = cls
    try:
        yield
    finally:
        networks_module.PatchConv2D = saved


def meta_snake(quick: bool, repeats: int) -> List[Dict[str, Any]]:
    """Row 6: the meta-gradient update on Snake 6x6, before and after (module docstring)."""
    preset = load_config("snake-meta")
    a2c = preset.a2c if not quick else dataclasses.replace(preset.a2c, num_envs=32,
                                                           updates_per_call=2)
    env = jumanji.make(preset.env, **preset.env_kwargs)
    conv_net = load_config("snake").network  # the conv torso of the first Snake runs
    remat_on = dataclasses.replace(preset.meta, remat=True)
    none = dataclasses.replace(preset.meta, estimator="none")
    shared_mlp = dataclasses.replace(preset.network, critic_layers=())
    k_step = dataclasses.replace(preset.meta, meta_steps=3, remat=True)
    mixed = dataclasses.replace(k_step, mixing="uniform")
    cases = [
        ("before: conv torso, conv_general_dilated_patches, remat on", conv_net, remat_on,
         DilatedPatchConv2D),
        ("conv torso, slice patches (PatchConv2D now), remat on", conv_net, remat_on,
         PatchConv2D),
        ("conv torso, slice patches, remat off", conv_net, preset.meta, PatchConv2D),
        ("MLP torso shared by policy and values, remat off", shared_mlp, preset.meta,
         PatchConv2D),
        ("after: separate actor / critic / outer-critic MLPs, remat off (snake-meta preset)",
         preset.network, preset.meta, PatchConv2D),
        ("after, 3 seeds vmapped in one program (as the sweeps run them)", preset.network,
         preset.meta, PatchConv2D, 3),
        ("reference: snake-meta preset, A2C arm (meta.estimator=none)", preset.network, none,
         PatchConv2D),
        # The multi-step paper's comparison (K = 3): three differentiated inner updates per
        # meta update, then one outer rollout (K-step) or one after each update (mixed).
        ("K = 3 K-step (meta.meta_steps=3, remat on)", preset.network, k_step, PatchConv2D),
        ("K = 3 mixed (meta.mixing=uniform, remat on)", preset.network, mixed, PatchConv2D),
    ]
    rows = []
    for name, net, meta, cls, *seeds in cases:
        seeds = seeds[0] if seeds else 1
        print(f"meta Snake: {name} ...", flush=True)
        with conv_class(cls):
            trainer = make_a2c_meta_train(env, make_network(env, net), a2c, meta)
            state, t = time_trainer(trainer, repeats, seeds)
        inner = (a2c.num_envs * a2c.rollout_length * a2c.updates_per_call * seeds
                 * max(1, meta.meta_steps))
        rows.append({"name": name, "batch": f"{a2c.num_envs} x {a2c.rollout_length}"
                     + (f" x {seeds} seeds" if seeds > 1 else ""),
                     "steps": inner, "all_steps": trainer.steps_per_call * seeds,
                     "updates": a2c.updates_per_call,
                     "params": param_count(state.params) // seeds, **t})
    return rows


def time_trainer(trainer: Any, repeats: int, seeds: int = 1):
    """``(initial state, timed(...))`` of a trainer's jitted ``train`` from seed 0 (with
    ``seeds > 1``: that many seeds vmapped)."""
    if seeds > 1:
        keys = jax.random.split(jax.random.PRNGKey(0), seeds)
        state = jax.jit(jax.vmap(trainer.init))(keys)
        train = jax.jit(jax.vmap(trainer.train))
    else:
        state = jax.jit(trainer.init)(jax.random.PRNGKey(0))
        train = jax.jit(trainer.train)
    holder = {"state": state}

    def call():
        holder["state"], metrics = train(holder["state"])
        return metrics

    return state, timed(call, repeats)


def meta_snake_lines(rows: List[Dict[str, Any]], command: str) -> List[str]:
    lines = [META_BEGIN, "## Meta-gradient update on Snake 6x6 (issue 30)", "",
             "The full meta-gradient update (`meta.estimator=debiased`: one inner A2C update "
             "differentiated with respect to the discount, the outer loss on a fresh rollout "
             "by the updated policy with the outer value head's advantage, the meta Adam step) "
             "on `Snake-v1` 6x6 at the paper's 512 envs x 5-step rollouts, "
             f"{rows[0]['updates']} meta updates per jitted call. "
             "Inner env steps are the paper's count (75M per run); all env steps add the "
             "outer rollouts (one per meta update). Target: >= 50,000 inner env steps / s "
             "(75M in <= 25 min). One run; rows share it.", "",
             "| run | batch | params | inner env steps / s | all env steps / s | vs before "
             "| first call, s |", "|---|---|---|---|---|---|---|"]
    base = rows[0]["steps"] / rows[0]["median"]
    for r in rows:
        sps = r["steps"] / r["median"]
        lines.append(f"| {r['name']} | {r['batch']} | {r['params']:,} | {sps:,.0f} | "
                     f"{r['all_steps'] / r['median']:,.0f} | {sps / base:.2f}x | "
                     f"{r['first']:.1f} |")
    after = next(r for r in rows if r["name"].startswith("after:"))
    sps = after["steps"] / after["median"]
    lines += ["", f"After / before: {sps / base:.1f}x; target >= 50,000 inner env steps / s: "
              f"{'met' if sps >= 50_000 else 'NOT met'} ({75e6 / sps / 60:.0f} min per 75M "
              "inner steps per seed at this rate).", "",
              "Where the time went (profile by elimination, rows above): the conv torso's "
              "patches, taken with `lax.conv_general_dilated_patches`, are a convolution "
              "whose input gradient (the second conv layer's, and again in the "
              "meta-gradient's differentiation of the inner update) takes XLA:CPU's slow "
              "path inside `lax.scan`; strided slices instead remove most of that. "
              "Rematerialising the inner update (`meta.remat`, for memory at large K) "
              "recomputes its forward pass in the backward one: at K = 1 it only costs time "
              "(0.8x in separate runs while preparing this, so the preset turns it off). "
              "The MLP torso on the 180-input board has a third of the conv torso's "
              "multiply-adds and no patch ops. The preset now has the paper's separate "
              "actor, critic and outer critic (as MLPs): three encoders instead of one. "
              "The vmapped-seeds row is what the Snake sweeps run (3 seeds per program).",
              "",
              "Timed calls, seconds:", ""]
    for r in rows:
        lines.append(f"- {r['name']}: {', '.join(f'{t:.2f}' for t in r['times'])} "
                     f"({r['steps']:,} inner env steps each)")
    lines += ["", f"Command: `{command}`"
              f" ({platform.processor() or platform.machine()}, {os.cpu_count()} cores shared "
              f"with other jobs: load average {os.getloadavg()[0]:.1f} at the end, "
              f"JAX {jax.__version__}, "
              f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC)", META_END]
    return lines


META_BEGIN, META_END = "<!-- meta-snake:begin -->", "<!-- meta-snake:end -->"


def write_meta_section(path: Path, section: List[str]) -> None:
    """Replace the meta-Snake section of the results file (or add it before "Reading the
    numbers"), keeping the rest."""
    text = path.read_text() if path.exists() else "# Training throughput\n"
    block = "\n".join(section)
    if META_BEGIN in text:
        head, rest = text.split(META_BEGIN, 1)
        text = head + block + rest.split(META_END, 1)[1]
    elif "## Reading the numbers" in text:
        head, rest = text.split("## Reading the numbers", 1)
        text = head + block + "\n\n## Reading the numbers" + rest
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
    print(block)


def conv_in_scan(batch: int, repeats: int) -> List[Dict[str, Any]]:
    """Gradient of a Snake-sized conv torso at top level and inside lax.scan."""
    x = jax.random.uniform(jax.random.PRNGKey(0), (batch, 12, 12, 5))
    rows = []
    for name, conv in (("hk.Conv2D", lambda c, k, s: hk.Conv2D(c, k, s, padding="VALID")),
                       ("PatchConv2D, patches from conv_general_dilated_patches (before)",
                        lambda c, k, s: DilatedPatchConv2D(c, k, s)),
                       ("PatchConv2D, patches from strided slices (ours)",
                        lambda c, k, s: PatchConv2D(c, k, s))):
        def torso(x, conv=conv):
            h = jax.nn.relu(conv(32, 2, 2)(x))
            h = jax.nn.relu(conv(32, 2, 1)(h))
            return hk.Linear(64)(h.reshape(h.shape[0], -1)).sum()

        f = hk.without_apply_rng(hk.transform(torso))
        params = f.init(jax.random.PRNGKey(1), x)
        t_top, t_scan = _time_grads(f, params, x, repeats)
        rows.append({"conv": name, "top": t_top, "scan": t_scan})
    return rows


def _time_grads(f: Any, params: Any, x: Any, repeats: int):
    grad = jax.grad(f.apply)
    top = jax.jit(grad)

    @jax.jit
    def scanned(params):
        def body(p, _):
            g = grad(p, x)
            return jax.tree.map(lambda a, b: a - 1e-4 * b, p, g), None
        return jax.lax.scan(body, params, None, 4)[0]

    t_top = timed(lambda: top(params, x), repeats)["median"]
    return t_top, timed(lambda: scanned(params), repeats)["median"] / 4


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--jumanji-learner-steps", type=int, default=10)
    p.add_argument("--jumanji-epochs", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="tiny sizes; a smoke run")
    p.add_argument("--skip-jumanji", action="store_true")
    p.add_argument("--only-meta-snake", action="store_true",
                   help="only the meta-gradient Snake rows, written into their section")
    p.add_argument("--output", default=str(RESULTS / "train_throughput.md"))
    args = p.parse_args(argv)
    start = time.perf_counter()
    load_start = os.getloadavg()
    default = TrainConfig()
    macro = load_config("addition-macro")
    snake = load_config("snake")
    a2c_default, net_default = default.a2c, default.network
    if args.quick:
        a2c_default = A2CConfig(num_envs=16, rollout_length=8, updates_per_call=2)
        args.repeats, args.jumanji_learner_steps, args.jumanji_epochs = 1, 1, 2
    rows: List[Dict[str, Any]] = []
    if args.only_meta_snake:
        section = meta_snake_lines(meta_snake(args.quick, args.repeats), command(argv))
        write_meta_section(Path(args.output), section)
        return 0

    addition = npigym.make("Addition-v0")
    print("env only ...", flush=True)
    e = env_only(addition, a2c_default.num_envs,
                 a2c_default.rollout_length * a2c_default.updates_per_call, args.repeats)
    rows.append({"name": "Addition-v0, env only (auto-reset, random valid actions)",
                 "batch": f"{a2c_default.num_envs} envs", **e})
    print("ours, Addition default ...", flush=True)
    o = ours(addition, net_default, a2c_default, args.repeats)
    rows.append({"name": "Addition-v0, our A2C, default network and settings",
                 "batch": f"{a2c_default.num_envs} x {a2c_default.rollout_length}", **o})
    if not args.quick:
        print("ours, Addition macro preset ...", flush=True)
        addition_macro = npigym.make("Addition-v0", **macro.env_kwargs)
        m = ours(addition_macro, macro.network, macro.a2c, args.repeats)
        rows.append({"name": "Addition-v0 (modes=macro), our A2C, addition-macro preset",
                     "batch": f"{macro.a2c.num_envs} x {macro.a2c.rollout_length}", **m})
    print("ours, Snake ...", flush=True)
    snake_env = jumanji.make("Snake-v1")
    snake_a2c = snake.a2c if not args.quick else a2c_default
    s = ours(snake_env, snake.network, snake_a2c, args.repeats)
    rows.append({"name": "Snake-v1, our A2C (Jumanji-sized network, feed-forward)",
                 "batch": f"{snake_a2c.num_envs} x {snake_a2c.rollout_length}", **s})
    if not args.quick:
        # As many parameters as Jumanji's two-torso network (a bit more), in one torso.
        print("ours, Snake, Jumanji's parameter count ...", flush=True)
        wide = dataclasses.replace(snake.network, encoder_layers=(256,),
                                   head_layers=(128, 128))
        s = ours(snake_env, wide, snake_a2c, args.repeats)
        rows.append({"name": "Snake-v1, our A2C, wider MLPs (>= Jumanji's parameter count)",
                     "batch": f"{snake_a2c.num_envs} x {snake_a2c.rollout_length}", **s})
    if not args.skip_jumanji:
        print("Jumanji's A2C, Snake ...", flush=True)
        j = jumanji_a2c(args.jumanji_learner_steps, args.jumanji_epochs)
        rows.append({"name": "Snake-v1, Jumanji's A2C trainer (pmap(scan(run_epoch)))",
                     "batch": "128 x 20", **j})
    meta = meta_snake(args.quick, args.repeats)
    print("conv gradients in scan ...", flush=True)
    conv = conv_in_scan(256 if args.quick else 2560, args.repeats)
    write(args, argv, rows, conv, time.perf_counter() - start, load_start,
          meta_snake_lines(meta, command(argv)))
    return 0


NOTES = """\
- Network size. Jumanji's Snake A2C has separate actor and critic networks, each with the
  same conv stack (32-32 channels), then MLPs of 64-64 (policy) and 128-128 (value). Ours
  shares one conv torso between the policy and the two value heads, as npigym's agents do
  (`--config snake`: MLPs of 64). The "wider MLPs" row gives ours at least Jumanji's parameter
  count, so the ratio is not an artefact of a smaller network. Most of the gap is the
  convolution gradient inside `lax.scan` (table above): Jumanji's trainer differentiates
  `hk.Conv2D` inside its scanned epoch, ours uses `PatchConv2D`.
- Defaults for a 2-core CPU: 128 envs x 32 steps per update, 20 updates per jitted call, a
  64-unit LSTM and 64-unit MLPs. Wider networks cost linearly here; more envs cost
  proportionally, since XLA:CPU has two cores to fill and a batch of 128 already fills them.
- On a GPU the env and the network run as a few large kernels, so the batch, not the step
  count, is what's cheap: raise `num_envs` to 1-4K (throughput grows almost linearly until the
  device is full), keep `rollout_length` short (16-32) for fresh data, and the
  `hk.Conv2D`-in-scan penalty that motivates `PatchConv2D` mostly disappears (cuDNN's
  convolution gradients do not have XLA:CPU's slow path), so either conv is fine there.
  Not measured here: no GPU was available to this session."""


def command(argv: List[str]) -> str:
    return " ".join([".venv/bin/python benchmarks/train_throughput.py",
                     *(shlex.quote(a) for a in argv)])


def write(args, argv, rows, conv, total_s, load_start, meta_lines=()) -> None:
    def sps(r):
        return r["steps"] / r["median"]

    lines = ["# Training throughput", "",
             "Env steps per second of the whole training loop (rollout with the network, "
             "loss, gradient, optimizer update), one jitted call of `updates_per_call` "
             "updates; median of the timed calls after a warm-up call. Rows share one run.",
             "", "| run | batch (envs x steps) | params | env steps / s | first call, s |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['batch']} | {r.get('params', '—'):,} | "
                     f"{sps(r):,.0f} | {r['first']:.1f} |"
                     if isinstance(r.get("params"), int) else
                     f"| {r['name']} | {r['batch']} | — | {sps(r):,.0f} | {r['first']:.1f} |")
    by = {r["name"].split(",")[0] + ("|jumanji" if "Jumanji's" in r["name"] else "|ours"
                                     if "our A2C" in r["name"] else "|env"): r for r in rows}
    lines += ["", "## Ratios (same run)", "", "| ratio | value | target |", "|---|---|---|"]
    env_row = by.get("Addition-v0|env")
    ours_row = next(r for r in rows if r["name"].startswith("Addition-v0, our A2C"))
    if env_row:
        lines.append(f"| Addition training (default) / Addition env only | "
                     f"{sps(ours_row) / sps(env_row):.4f} (1 : {sps(env_row) / sps(ours_row):,.0f})"
                     " | — |")
    jumanji_row = by.get("Snake-v1|jumanji")
    snake_row = by.get("Snake-v1|ours")
    if jumanji_row and snake_row:
        ratio = sps(snake_row) / sps(jumanji_row)
        lines.append(f"| our A2C on Snake / Jumanji's A2C on Snake | {ratio:.1f}x | >= 10x "
                     f"({'met' if ratio >= 10 else 'NOT met'}) |")
        wide_row = next((r for r in rows if "wider MLPs" in r["name"]), None)
        if wide_row:
            ratio = sps(wide_row) / sps(jumanji_row)
            lines.append(f"| our A2C, wider MLPs, on Snake / Jumanji's A2C on Snake | "
                         f"{ratio:.1f}x | >= 10x ({'met' if ratio >= 10 else 'NOT met'}) |")
    lines += ["", "## Convolution gradients inside `lax.scan` (why `PatchConv2D`)", "",
              "Gradient of a Snake-sized conv torso (2 conv layers, 32 channels, + linear) on a "
              f"batch of {2560 if not args.quick else 256} grids, seconds per gradient:", "",
              "| conv | top level | inside lax.scan | slowdown |", "|---|---|---|---|"]
    for c in conv:
        lines.append(f"| {c['conv']} | {c['top']:.4f} | {c['scan']:.4f} | "
                     f"{c['scan'] / c['top']:.1f}x |")
    if meta_lines:
        lines += ["", *meta_lines]
    lines += ["", "## Reading the numbers", "",
              NOTES]
    load_end = os.getloadavg()
    lines += ["", "## Timed calls, seconds", ""]
    for r in rows:
        lines.append(f"- {r['name']}: {', '.join(f'{t:.2f}' for t in r['times'])} "
                     f"({r['steps']:,} env steps each)")
    lines += ["", "## Machine", "",
              f"- {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
              f"load average at start {load_start[0]:.1f}, at end {load_end[0]:.1f} "
              "(other jobs share this CPU: compare ratios, not absolute numbers across runs)",
              f"- JAX {jax.__version__} ({jax.default_backend()}), Jumanji "
              f"{jumanji.__version__}, Python {platform.python_version()}",
              f"- date {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; total {total_s:.0f} s",
              "", "## Command", "", "```",
              command(argv), "```", ""]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
