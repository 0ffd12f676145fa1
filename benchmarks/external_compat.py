"""External RL code on npigym's envs: a compatibility table and masked PPO vs our A2C.

For every registered id, one cell per way in (pass, or the reason it fails):

- gymnasium checker: ``gymnasium.utils.env_checker.check_env`` on ``gymnasium.make(...)``;
- SB3 checker: ``stable_baselines3.common.env_checker.check_env``;
- MaskablePPO runs: sb3-contrib's ``MaskablePPO("MultiInputPolicy")`` learns for a few hundred
  steps on ``flat_actions=True`` envs, then a masked rollout takes no invalid action;
- JumanjiToGymWrapper: ``jumanji.wrappers.JumanjiToGymWrapper`` resets and steps, observations
  in its space;
- gymnax adapter: ``npigym.wrappers.gymnax.GymnaxEnv`` in a jitted, vmapped ``lax.scan``
  (gymnax's auto-reset), observations in its space, masked actions never invalid;
- dm_env: ``npigym.wrappers.DmEnvWrapper``, timesteps conforming to its specs.

``--learning`` also trains MaskablePPO on Addition-macro (ADD1 / LSHIFT as macro actions, 5
digits, the env of ``npigym train --config addition-macro``) for a budget of env steps, next to
our A2C (that config) on the same budget, and evaluates both greedily on 5-digit instances.

    python benchmarks/external_compat.py                       # the table (about 5 min)
    python benchmarks/external_compat.py --learning-only --budget 200000

Results accumulate in ``benchmarks/results/external_compat.json``; the markdown report
(``external_compat.md``) is rewritten from it after each part.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from typing import Any, Callable, Dict, List, Optional

os.environ.setdefault("MPLBACKEND", "Agg")

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

import npigym

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
COLUMNS = ("gymnasium checker", "SB3 checker", "MaskablePPO runs", "JumanjiToGymWrapper",
           "gymnax adapter", "dm_env")
# SB3's default CNN (NatureCNN) needs images of at least 36 x 36; Canonicalize renders 32 x 32
# by default.
SB3_IMAGE_KWARGS = {"image_size": 36}
MACRO_KWARGS = {"modes": "macro", "max_digits": 5}
# Known warnings, by their first 40 characters, as the table shows them.
SHORT_WARNINGS = {"The minimal resolution for an image is 36": "32x32 images are below the "
                  "36x36 of SB3's default CNN"}
EVAL_DIGITS = (5, 20)


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg[:160]}"


def _cell(fn: Callable[[], Optional[str]]) -> str:
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            note = fn()
    except Exception as e:  # a cell reports, the table goes on
        traceback.print_exc()
        return f"fail ({_short(e)})"
    out = "pass" if not note else f"pass ({note})"
    # The checkers' and libraries' own warnings (not deprecations from elsewhere).
    relevant = sorted({str(w.message).splitlines()[0][:120] for w in record
                       if any(lib in (w.filename or "")
                              for lib in ("gymnasium", "stable_baselines3", "sb3_contrib"))})
    if relevant:
        out += "; warns: " + " / ".join(SHORT_WARNINGS.get(w[:40], w) for w in relevant)
    return out


# ----------------------------------------------------------------------------------------------
# The cells.
# ----------------------------------------------------------------------------------------------
def gymnasium_checker(env_id: str) -> Optional[str]:
    from gymnasium.utils.env_checker import check_env

    for flat in (False, True):
        env = gymnasium.make(f"npigym/{env_id}", flat_actions=flat)
        check_env(env.unwrapped, skip_render_check=True)
        env.close()
    return None


def sb3_checker(env_id: str) -> Optional[str]:
    from stable_baselines3.common.env_checker import check_env

    for flat in (False, True):
        env = gymnasium.make(f"npigym/{env_id}", flat_actions=flat)
        check_env(env.unwrapped)
        env.close()
    return None


def maskable_ppo_runs(env_id: str, steps: int = 256) -> Optional[str]:
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.env_util import make_vec_env

    def run(kwargs: Dict[str, Any]) -> None:
        venv = make_vec_env(f"npigym/{env_id}", n_envs=2, seed=0,
                            env_kwargs={"flat_actions": True, **kwargs})
        model = MaskablePPO("MultiInputPolicy", venv, n_steps=64, batch_size=64, n_epochs=1,
                            seed=0, device="cpu")
        model.learn(steps)
        obs = venv.reset()
        for _ in range(64):
            masks = get_action_masks(venv)
            action, _ = model.predict(obs, action_masks=masks)
            assert masks[np.arange(len(action)), action].all()
            obs, _, _, infos = venv.step(action)
            assert not any(info.get("invalid_action", False) for info in infos), infos
        venv.close()

    try:
        run({})
    except Exception as e:
        if not env_id.startswith("Canonicalize"):
            raise
        run(SB3_IMAGE_KWARGS)
        return (f"with image_size=36: at the default 32, SB3's default CNN raises "
                f"{type(e).__name__} (it needs >= 36x36 images)")
    return None


def jumanji_to_gym(env_id: str) -> Optional[str]:
    from jumanji.wrappers import JumanjiToGymWrapper

    env = JumanjiToGymWrapper(npigym.make(env_id), seed=0)
    obs, _ = env.reset()
    assert obs in env.observation_space, "reset observation outside the space"
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = env.action_space.sample()
        if "action_mask" in obs:  # a callable program, any arguments
            action[0] = rng.choice(np.flatnonzero(obs["action_mask"]))
        obs, _, terminated, truncated, _ = env.step(action)
        assert obs in env.observation_space, "step observation outside the space"
        if terminated or truncated:
            obs, _ = env.reset()
    return None


def gymnax_adapter(env_id: str, num_envs: int = 4, steps: int = 32) -> Optional[str]:
    from npigym.wrappers.gymnax import GymnaxEnv

    env = GymnaxEnv(npigym.make(env_id))
    params = env.default_params
    masked = env.flat_action_table is not None

    def rollout(key):
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs),
                                                               params)

        def body(carry, k):
            obs, state = carry
            k_act, k_step = jax.random.split(k)
            if masked:
                mask = jax.vmap(env.action_mask, in_axes=(0, None))(state, params)
                action = jax.random.categorical(k_act, jnp.where(mask, 0.0, -jnp.inf))
            else:
                action = jax.vmap(env.action_space(params).sample)(
                    jax.random.split(k_act, num_envs))
            obs, state, reward, done, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_step, num_envs), state, action, params)
            inside = jax.vmap(env.observation_space(params).contains)(obs)
            invalid = info.get("invalid_action", jnp.zeros(num_envs, bool))
            return (obs, state), (inside, invalid, done)

        return jax.lax.scan(body, (obs, state), jax.random.split(key, steps))[1]

    inside, invalid, _ = jax.jit(rollout)(jax.random.PRNGKey(0))
    assert bool(np.all(inside)), "observation outside the space"
    assert not bool(np.any(invalid)), "a masked action was invalid"
    return None


def dm_env_cell(env_id: str) -> Optional[str]:
    import tree

    from npigym.wrappers import DmEnvWrapper

    env = DmEnvWrapper(npigym.make(env_id), seed=0)
    spec = env.observation_spec()
    timestep = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        tree.map_structure(lambda v, s: s.validate(v), timestep.observation, spec)
        action = env.action_spec().generate_value()
        if isinstance(timestep.observation, dict) and "action_mask" in timestep.observation:
            action = np.array(action)
            action[0] = rng.choice(np.flatnonzero(timestep.observation["action_mask"]))
        timestep = env.step(action)
    return None


CELLS = dict(zip(COLUMNS, (gymnasium_checker, sb3_checker, maskable_ppo_runs, jumanji_to_gym,
                           gymnax_adapter, dm_env_cell)))


def compat_table(ids: List[str]) -> Dict[str, Dict[str, str]]:
    table = {}
    for env_id in ids:
        row = {}
        for column, fn in CELLS.items():
            start = time.time()
            row[column] = _cell(lambda fn=fn, env_id=env_id: fn(env_id))
            print(f"{env_id:32s} {column:20s} {time.time() - start:6.1f}s  {row[column]}",
                  flush=True)
        table[env_id] = row
    return table


# ----------------------------------------------------------------------------------------------
# Learning: MaskablePPO vs our A2C on Addition-macro.
# ----------------------------------------------------------------------------------------------
def evaluate_sb3(model: Any, episodes: int, digits: int, seed: int = 10_000
                 ) -> Dict[str, float]:
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.env_util import make_vec_env

    kwargs = {**MACRO_KWARGS, "min_digits": digits, "max_digits": digits}
    venv = make_vec_env("npigym/Addition-v0", n_envs=8, seed=seed,
                        env_kwargs={"flat_actions": True, **kwargs})
    obs = venv.reset()
    successes, lengths, done_episodes = [], [], 0
    steps = np.zeros(8, int)
    while done_episodes < episodes:
        action, _ = model.predict(obs, action_masks=get_action_masks(venv), deterministic=True)
        obs, _, dones, infos = venv.step(action)
        steps += 1
        for i, done in enumerate(dones):
            if done:
                successes.append(bool(infos[i].get("success", False)))
                lengths.append(int(steps[i]))
                steps[i] = 0
                done_episodes += 1
    venv.close()
    return {"success": float(np.mean(successes[:episodes])),
            "steps": float(np.mean(lengths[:episodes]))}


def train_maskable_ppo(budget: int, seed: int, episodes: int) -> Dict[str, Any]:
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)  # the env's XLA and torch share two cores
    venv = make_vec_env("npigym/Addition-v0", n_envs=8, seed=seed,
                        env_kwargs={"flat_actions": True, **MACRO_KWARGS})
    model = MaskablePPO("MultiInputPolicy", venv, n_steps=128, batch_size=256, n_epochs=4,
                        learning_rate=3e-4, ent_coef=0.01, gamma=0.99, seed=seed, device="cpu")
    start = time.time()
    model.learn(budget)
    seconds = time.time() - start
    venv.close()
    return {"algo": "MaskablePPO (sb3-contrib, MultiInputPolicy, flat actions)", "seed": seed,
            "env_steps": budget, "train_seconds": round(seconds, 1), "episodes": episodes,
            "eval": {str(d): evaluate_sb3(model, episodes, d) for d in EVAL_DIGITS}}


def train_a2c(budget: int, seed: int, episodes: int) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as run_dir:
        cmd = [sys.executable, "-m", "npigym.cli", "train", "--config", "addition-macro",
               "--run-dir", run_dir, f"total_env_steps={budget}", f"seed={seed}",
               "num_seeds=1", f"eval_lengths={list(EVAL_DIGITS)}",
               f"eval_episodes={episodes}"]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        with open(os.path.join(run_dir, "eval.json")) as f:
            rows = json.load(f)["rows"]
        with open(os.path.join(run_dir, "progress.json")) as f:
            seconds = json.load(f)["wall_time"]
    return {"algo": "npigym A2C (npigym train --config addition-macro)", "seed": seed,
            "env_steps": budget, "train_seconds": round(seconds, 1), "episodes": episodes,
            "eval": {str(r["length"]): {"success": r["success"], "steps": r["steps"]}
                     for r in rows}}


# ----------------------------------------------------------------------------------------------
# Report.
# ----------------------------------------------------------------------------------------------
def write_report(results: Dict[str, Any], path: str) -> None:
    lines = ["# External RL code on npigym's environments", ""]
    table = results.get("table")
    if table:
        lines += [f"Command: `{results.get('table_command', '')}` "
                  f"({results.get('table_date', '')}; {results.get('versions', '')})", "",
                  "| id | " + " | ".join(COLUMNS) + " |",
                  "|---|" + "---|" * len(COLUMNS)]
        for env_id, row in table.items():
            lines.append(f"| {env_id} | " + " | ".join(row[c] for c in COLUMNS) + " |")
        lines += ["", "Cells: `pass`, or why not. Checkers run on `gymnasium.make(...)` with "
                  "MultiDiscrete and with flat actions. MaskablePPO: `MultiInputPolicy`, "
                  "flat actions, 256 training steps on 2 envs, then a 64-step masked rollout "
                  "with no invalid action. gymnax: 4 envs x 32 steps in a jitted scan "
                  "(auto-reset inside `step`), observations in the space, masked actions never "
                  "invalid. JumanjiToGymWrapper and dm_env: 20 steps of callable programs, "
                  "observations in the space / conforming to the specs.", ""]
    learning = results.get("learning")
    if learning:
        lines += ["## Masked PPO vs our A2C on Addition-macro", "",
                  f"Command: `{results.get('learning_command', '')}` "
                  f"({results.get('learning_date', '')}). Env: `Addition-v0` with "
                  f"`{MACRO_KWARGS}` (the env of `npigym train --config addition-macro`); "
                  "training on 1-5 digits; greedy success on instances of exactly 5 and 20 "
                  "digits after the budget (each algorithm's own evaluation, same sizes and "
                  "episode counts). A fact, not a target: A2C's own report "
                  "(learn_addition_macro.md) reaches 99 % at 0.8-1.3 M steps.", "",
                  "| algorithm | seed | env steps | training wall s | success, 5 digits "
                  "| success, 20 digits | mean steps (5 / 20) | episodes per size |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in learning:
            e5, e20 = r["eval"]["5"], r["eval"]["20"]
            lines.append(f"| {r['algo']} | {r['seed']} | {r['env_steps']:,} | "
                         f"{r['train_seconds']} | {e5['success']:.3f} | {e20['success']:.3f} | "
                         f"{e5['steps']:.1f} / {e20['steps']:.1f} | {r['episodes']} |")
        lines += ["", "MaskablePPO: 8 envs (`make_vec_env`, DummyVecEnv), n_steps=128, "
                  "batch 256, 4 epochs, lr 3e-4, ent_coef 0.01, gamma 0.99, a feed-forward "
                  "MLP (64, 64); exact masks of the flat `Discrete` actions. A2C: the "
                  "addition-macro preset (128 envs, rollout 32, LSTM core, lr 1e-3). Both on "
                  "the same 2-core CPU, shared with other work (wall times are indicative); "
                  "A2C's time is its own training clock (compile included).",
                  ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", default="", help="comma-separated ids (default: all)")
    parser.add_argument("--learning", action="store_true", help="also run the learning part")
    parser.add_argument("--learning-only", action="store_true")
    parser.add_argument("--budget", type=int, default=200_000, help="env steps per algorithm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes")
    parser.add_argument("--output", default=os.path.join(RESULTS, "external_compat.md"))
    args = parser.parse_args(argv)
    json_path = os.path.splitext(args.output)[0] + ".json"
    results: Dict[str, Any] = {}
    if os.path.exists(json_path):
        with open(json_path) as f:
            results = json.load(f)
    command = "python benchmarks/external_compat.py " + " ".join(argv or sys.argv[1:])
    today = time.strftime("%Y-%m-%d")
    if not args.learning_only:
        import sb3_contrib
        import stable_baselines3
        import torch

        ids = [i for i in args.ids.split(",") if i] or npigym.registered_environments()
        table = compat_table(ids)
        results["table"] = {**results.get("table", {}), **table} if args.ids else table
        results["table_command"], results["table_date"] = command.strip(), today
        results["versions"] = (f"gymnasium {gymnasium.__version__}, stable-baselines3 "
                               f"{stable_baselines3.__version__}, sb3-contrib "
                               f"{sb3_contrib.__version__}, torch {torch.__version__}, "
                               f"jax {jax.__version__}")
    if args.learning or args.learning_only:
        results["learning"] = [train_maskable_ppo(args.budget, args.seed, args.episodes),
                               train_a2c(args.budget, args.seed, args.episodes)]
        results["learning_command"], results["learning_date"] = command.strip(), today
        print(json.dumps(results["learning"], indent=1))
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1)
    write_report(results, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
