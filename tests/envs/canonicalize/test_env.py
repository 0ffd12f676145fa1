"""Canonicalize: the machine wiring, the expert, postconditions, rewards, limits and posings."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jumanji.testing.env_not_smoke import check_env_does_not_smoke, check_env_specs_does_not_smoke
from jumanji.wrappers import Wrapper

import npigym
from npigym.agents.random import make_random_policy
from npigym.envs.canonicalize import (
    Canonicalize,
    RandomGenerator,
    shapes,
    task,
)
from npigym.envs.canonicalize import constants as c
from npigym.envs.machine.types import Observation
from tests.envs.canonicalize.helpers import IMAGE, expert_results, make_random_rollout


def call(program, arg=0):
    return jnp.asarray([program, arg, 0, 0], jnp.int32)


# ----------------------------------------------------------------------------------------------
# API: jit, vmap, specs.
# ----------------------------------------------------------------------------------------------
def test_reset_and_step_jit_and_vmap_without_retracing(default_env, default_jitted):
    env = default_env
    reset, step, _ = default_jitted  # wrapped in chex.assert_max_traces(n=1)
    for seed in range(3):
        state, ts = reset(jax.random.PRNGKey(seed))
        state, ts = step(state, call(c.HGOTO))
        state, ts = step(state, call(c.RETURN))
    vreset = jax.jit(jax.vmap(chex.assert_max_traces(env.reset, n=1)))
    vstep = jax.jit(jax.vmap(chex.assert_max_traces(env.step, n=1)))
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    states, ts = vreset(keys)
    for program in (c.HGOTO, c.RETURN, c.VGOTO):
        states, ts = vstep(states, jnp.tile(call(program), (8, 1)))
    assert ts.observation.local.image.shape == (8, IMAGE, IMAGE)
    assert ts.observation.local.target_azimuth.shape == (8, c.NUM_AZIMUTHS)
    assert ts.observation.local.target_elevation.shape == (8, c.NUM_ELEVATIONS)
    np.testing.assert_array_equal(np.asarray(ts.observation.program), c.VGOTO)


def test_observation_layout_and_specs(default_env, default_jitted):
    env = default_env
    reset, _, _ = default_jitted
    state, ts = reset(jax.random.PRNGKey(1))
    obs = ts.observation
    env.observation_spec.validate(obs)
    assert isinstance(obs, Observation) and obs.full is None
    image = np.asarray(obs.local.image)
    assert image.dtype == np.float32 and image.shape == (IMAGE, IMAGE)
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.0
    np.testing.assert_array_equal(np.asarray(obs.local.target_azimuth),
                                  np.eye(c.NUM_AZIMUTHS)[0])  # 0 degrees
    np.testing.assert_array_equal(np.asarray(obs.local.target_elevation),
                                  np.eye(c.NUM_ELEVATIONS)[1])  # 15 degrees
    assert int(obs.program) == c.GOTO and int(obs.depth) == 0
    np.testing.assert_array_equal(np.asarray(obs.action_mask),
                                  [True, False, False, True, True, False, False, False, False])
    np.testing.assert_array_equal(np.asarray(env.action_spec.num_values), [9, 4, 1, 1])
    assert env.observation_spec.local.image.shape == (IMAGE, IMAGE)
    assert env.size_knobs == ("min_rotations", "max_rotations")
    assert "Canonicalize(image_size=(16, 16)" in repr(env)


def test_full_observation_adds_the_current_pose(problem_env):
    state, ts = problem_env.start(0)  # from azimuth -45, elevation 45
    problem_env.env.observation_spec.validate(ts.observation)
    np.testing.assert_array_equal(np.asarray(ts.observation.full.azimuth),
                                  np.eye(c.NUM_AZIMUTHS)[21])
    np.testing.assert_array_equal(np.asarray(ts.observation.full.elevation),
                                  np.eye(c.NUM_ELEVATIONS)[3])


class _JittedReset(Wrapper):
    """jumanji's smoke check resets eagerly; op-by-op dispatch of the renderer is slow."""

    def __init__(self, env):
        super().__init__(env)
        self._reset = jax.jit(env.reset)

    def reset(self, key):
        return self._reset(key)


def test_jumanji_smoke_checks(default_env):
    check_env_specs_does_not_smoke(default_env)
    env = Canonicalize(image_size=8, time_limit=20)
    check_env_does_not_smoke(_JittedReset(env), select_action=jax.jit(make_random_policy(env)))


# ----------------------------------------------------------------------------------------------
# The expert.
# ----------------------------------------------------------------------------------------------
PINNED = ["HGOTO", "RGOTO", "ACT(RIGHT)", "ACT(RIGHT)", "ACT(RIGHT)", "RETURN", "RETURN",
          "VGOTO", "DGOTO", "ACT(DOWN)", "ACT(DOWN)", "RETURN", "RETURN", "RETURN"]
PINNED_POSES = [(21, 3)] * 2 + [(22, 3), (23, 3), (0, 3)] + [(0, 3)] * 4 + [(0, 2), (0, 1)] \
    + [(0, 1)] * 3


def test_pinned_expert_trace(problem_env):
    """From azimuth -45, elevation 45 to (0, 15): three steps right, two down."""
    calls, states, ts = problem_env.run_expert(0)
    names = problem_env.env.library.names
    assert calls == PINNED
    assert [(int(s.task.azimuth), int(s.task.elevation)) for s, _ in states] == PINNED_POSES
    returns = [(names[int(t.extras["returned_program"])], bool(t.extras["postcondition"]))
               for _, t in states if int(t.extras["returned_program"]) >= 0]
    assert returns == [(n, True) for n in ("RGOTO", "HGOTO", "DGOTO", "VGOTO", "GOTO")]
    assert bool(ts.extras["success"]) and bool(ts.last()) and float(ts.discount) == 0.0
    assert len(calls) == int(task.expert_steps(3, 2)) == 14
    np.testing.assert_array_equal(np.asarray(states[-1][0].task.moves), [0, 3, 0, 2])


def test_expert_returns_at_once_when_aligned_and_goes_left_the_short_way(problem_env):
    calls, _, ts = problem_env.run_expert(1)
    assert calls == ["HGOTO", "RETURN", "VGOTO", "RETURN", "RETURN"]
    assert bool(ts.extras["success"])
    calls, _, ts = problem_env.run_expert(2)
    assert calls == ["HGOTO", "LGOTO", "ACT(LEFT)", "ACT(LEFT)", "RETURN", "RETURN", "VGOTO",
                     "RETURN", "RETURN"]
    assert bool(ts.extras["success"])
    calls, _, ts = problem_env.run_expert(8)  # a half turn goes right
    assert calls == ["HGOTO", "RGOTO", *["ACT(RIGHT)"] * 12, "RETURN", "RETURN", "VGOTO",
                     "RETURN", "RETURN"]
    assert bool(ts.extras["success"])


EXPERT_CONFIGS = {
    "paper-seen": {},
    # unseen models, the full circle, all elevations, a random target, a bound on rotations
    # (the masked-choice sampling path)
    "unseen-full-circle-random-target": dict(split="unseen", azimuth_range=(-180, 165),
                                             elevation_range=(0, 90), target=None,
                                             min_rotations=1, max_rotations=14),
}


@pytest.mark.parametrize("config", sorted(EXPERT_CONFIGS))
def test_expert_solves_every_instance_with_true_postconditions(config):
    cfg = EXPERT_CONFIGS[config]
    env = Canonicalize(image_size=8, **cfg)
    n = 256
    first, final, done, rec = expert_results(env, n)
    assert done.all(), "every episode ends within the default step limit"
    active = rec["active"]
    ended = active & rec["last"]
    assert ended.sum() == n and (rec["success"] & ended).sum() == n
    assert not (rec["invalid"] & active).any()
    returns = active & (rec["returned"] >= 0)
    assert returns.sum() >= n and rec["postcondition"][returns].all()
    # Steps match the closed form and stay within half the default limit.
    d_az, d_el = (np.asarray(d) for d in task.distances(
        first.task.azimuth, first.task.elevation, first.task.target_azimuth,
        first.task.target_elevation))
    steps = active.sum(0)
    np.testing.assert_array_equal(steps, task.expert_steps(d_az, d_el))
    assert steps.max() <= env.expert_worst_case
    assert (np.asarray(first.step_limit) == 2 * env.expert_worst_case).all()
    if config == "paper-seen":  # the worst case occurs (5 azimuth + 3 elevation steps)
        assert steps.max() == env.expert_worst_case == 17
    np.testing.assert_array_equal(np.asarray(final.task.azimuth),
                                  np.asarray(final.task.target_azimuth))
    np.testing.assert_array_equal(np.asarray(final.task.elevation),
                                  np.asarray(final.task.target_elevation))
    # Each episode's ACT count is its pose distance (the shorter way round).
    acts = (active & (rec["action"][..., 0] == c.ACT)).sum(0)
    np.testing.assert_array_equal(acts, d_az + d_el)
    if "min_rotations" in cfg:
        assert acts.min() >= cfg["min_rotations"] and acts.max() <= cfg["max_rotations"]
    splits = np.asarray(shapes.split_of(first.task.shape))
    assert (splits == shapes.SPLITS.index(cfg.get("split", "seen"))).all()


def test_default_step_limit_is_twice_the_worst_case():
    # Paper's distribution: at most 5 azimuth steps (75 degrees) and 3 elevation steps (60 to
    # 15), so the expert's worst case is 5 + 3 + 9 = 17.
    assert Canonicalize(image_size=8).expert_worst_case == 17
    full = Canonicalize(image_size=8, azimuth_range=(-180, 165))
    assert full.expert_worst_case == 12 + 3 + 9
    random_target = Canonicalize(image_size=8, azimuth_range=(-180, 165), target=None)
    assert random_target.expert_worst_case == 12 + 4 + 9
    bounded = Canonicalize(image_size=8, max_rotations=4)
    assert bounded.expert_worst_case == 4 + 9  # both moves needed: 4 + 5 + 2 + 2
    aligned_only = Canonicalize(image_size=8, azimuth_range=(0, 0), elevation_range=(15, 15))
    assert aligned_only.expert_worst_case == 5


# ----------------------------------------------------------------------------------------------
# ACT, postconditions, rewards.
# ----------------------------------------------------------------------------------------------
def _run(penv, index, actions):
    state, ts = penv.start(index)
    out = []
    for a in actions:
        state, ts = penv.step(state, a)
        out.append((state, ts))
    return out


def test_act_wraps_azimuth_and_refuses_to_pass_the_elevation_bounds(problem_env,
                                                                      flat_problem_env):
    actions = [call(c.HGOTO), call(c.RGOTO)] + [call(c.ACT, c.RIGHT)] * 23
    out = _run(problem_env, 3, actions)  # from (15, 60)
    azimuths = [int(s.task.azimuth) for s, _ in out[2:]]
    assert azimuths == [*range(2, 24), 0]  # 15 degrees is index 1; wraps 23 -> 0
    out = _run(flat_problem_env, 4, [call(c.ACT, c.UP), call(c.ACT, c.DOWN)])  # from (0, 60)
    (s1, t1), (s2, t2) = out
    assert bool(t1.extras["invalid_action"]) and int(s1.task.elevation) == 4
    assert float(t1.reward) == pytest.approx(-0.5)  # the penalty, no progress
    assert not bool(t2.extras["invalid_action"]) and int(s2.task.elevation) == 3
    np.testing.assert_array_equal(np.asarray(s1.task.moves), [0, 0, 0, 0])
    np.testing.assert_array_equal(np.asarray(s2.task.moves), [0, 0, 0, 1])


def test_postconditions_catch_wrong_ways(problem_env):
    # LGOTO reaching the target after a step right is not an LGOTO.
    actions = [call(c.HGOTO), call(c.LGOTO), call(c.ACT, c.RIGHT), call(c.ACT, c.LEFT),
               call(c.ACT, c.LEFT), call(c.RETURN)]
    state, ts = _run(problem_env, 5, actions)[-1]  # from (15, 15)
    assert int(state.task.azimuth) == 0
    assert int(ts.extras["returned_program"]) == c.LGOTO
    assert not bool(ts.extras["postcondition"])
    # RGOTO the long way round (23 steps right) is a valid RGOTO; HGOTO then holds too.
    actions = [call(c.HGOTO), call(c.RGOTO)] + [call(c.ACT, c.RIGHT)] * 23 + [call(c.RETURN)] * 2
    out = _run(problem_env, 5, actions)
    assert [bool(ts.extras["postcondition"]) for _, ts in out[-2:]] == [True, True]
    # UGOTO and VGOTO from 0 to 15 degrees hold.
    actions = [call(c.VGOTO), call(c.UGOTO), call(c.ACT, c.UP), call(c.RETURN), call(c.RETURN)]
    out = _run(problem_env, 6, actions)  # from (0, 0)
    assert [bool(ts.extras["postcondition"]) for _, ts in out[-2:]] == [True, True]
    # LGOTO that also moved up fails, and so does HGOTO around it; GOTO at the target holds.
    actions = [call(c.HGOTO), call(c.LGOTO), call(c.ACT, c.LEFT), call(c.ACT, c.UP),
               call(c.RETURN), call(c.RETURN), call(c.RETURN)]
    out = _run(problem_env, 7, actions)  # from (15, 0)
    assert [bool(ts.extras["postcondition"]) for _, ts in out[-3:]] == [False, False, True]
    assert bool(out[-1][1].extras["success"])
    # GOTO returning away from the target ends the episode without success.
    state, ts = _run(problem_env, 5, [call(c.RETURN)])[0]
    assert bool(ts.last()) and float(ts.discount) == 0.0
    assert not bool(ts.extras["success"]) and float(ts.reward) == 0.0


def test_dense_reward_sums_to_success_plus_distance_covered(problem_env, flat_problem_env):
    assert problem_env.env.max_distance == 12 + 4
    _, states, _ = problem_env.run_expert(0)  # 5 rotations from the target
    rewards = [float(ts.reward) for _, ts in states]
    assert sum(rewards) == pytest.approx(1.0 + 5 / 16)
    assert max(rewards[:-1]) == pytest.approx(1 / 16) and min(rewards) >= 0.0
    # Moving away costs the same amount.
    (_, ts), = _run(flat_problem_env, 0, [call(c.ACT, c.LEFT)])
    assert float(ts.reward) == pytest.approx(-1 / 16)


# ----------------------------------------------------------------------------------------------
# Random valid actions keep the invariants.
# ----------------------------------------------------------------------------------------------
def test_random_valid_actions_keep_invariants():
    env = Canonicalize(image_size=IMAGE, target=None, elevation_range=(15, 75),
                       azimuth_range=(-180, 165), observation="full", time_limit=30)
    n, steps = 64, 80
    keys = jax.random.split(jax.random.PRNGKey(5), n)
    _, rec = make_random_rollout(env, steps)(keys, jnp.uint32(7))
    rec = jax.tree.map(np.asarray, rec)
    scene = rec["scene"]
    assert ((scene.azimuth >= 0) & (scene.azimuth < 24)).all()
    assert ((scene.elevation >= 1) & (scene.elevation <= 5)).all()
    assert (scene.moves >= 0).all()
    assert (rec["step_count"] <= rec["step_limit"]).all()
    assert not rec["invalid"].all() and rec["last"].any()
    for key in ("observation", "next_obs"):
        local = rec[key].local
        assert np.isfinite(local.image).all()
        assert (local.image >= 0).all() and (local.image <= 1).all()
        np.testing.assert_array_equal(local.target_azimuth.sum(-1), 1.0)
        np.testing.assert_array_equal(local.target_elevation.sum(-1), 1.0)
    # the full view's pose is the scene's (the observation after auto-reset is the new scene's)
    full = rec["observation"].full
    np.testing.assert_array_equal(full.azimuth.argmax(-1), scene.azimuth)
    np.testing.assert_array_equal(full.elevation.argmax(-1), scene.elevation)
    # a sample of the observations validates against the spec
    for t, i in [(0, 0), (17, 5), (steps - 1, n - 1)]:
        env.observation_spec.validate(jax.tree.map(lambda x, t=t, i=i: x[t, i],
                                                   rec["observation"]))


# ----------------------------------------------------------------------------------------------
# Posings.
# ----------------------------------------------------------------------------------------------
def test_macro_posing_expert_calls_two_builtins():
    env = Canonicalize(image_size=8, modes="macro")
    assert env.library.modes["HGOTO"] == "builtin" and env.library.modes["LGOTO"] == "agent"
    n = 64
    first, _, done, rec = expert_results(env, n, seed=2)
    active = rec["active"]
    assert done.all() and (active & rec["success"]).sum() == n
    np.testing.assert_array_equal(active.sum(0), 3)  # HGOTO, VGOTO, RETURN
    d_az, d_el = (np.asarray(d) for d in task.distances(
        first.task.azimuth, first.task.elevation, first.task.target_azimuth,
        first.task.target_elevation))
    np.testing.assert_array_equal((rec["primitive_steps"] * active).sum(0), d_az + d_el)
    assert rec["postcondition"][active & (rec["returned"] >= 0)].all()


def test_flat_posing_replays_the_hierarchical_experts_primitives(problem_env, flat_problem_env):
    flat = flat_problem_env
    assert flat.env.library.has_inline and not flat.env.has_expert
    with pytest.raises(ValueError, match="inlines"):
        flat.env.expert_action(flat.start(0)[0])
    for index in range(len(problem_env.problems)):
        calls, states, _ = problem_env.run_expert(index)
        acts = [c.DIRECTION_NAMES.index(call_[4:-1]) for call_ in calls if call_.startswith("ACT")]
        state, ts = flat.start(index)
        for direction in acts:
            state, ts = flat.step(state, call(c.ACT, direction))
            assert not ts.last() and not bool(ts.extras["invalid_action"])
        state, ts = flat.step(state, call(c.RETURN))
        assert bool(ts.extras["success"]) and int(state.step_count) == len(acts) + 1


# ----------------------------------------------------------------------------------------------
# Registry and bad input.
# ----------------------------------------------------------------------------------------------
def test_registered_ids():
    ids = npigym.registered_environments()
    for env_id in ("Canonicalize-v0", "Canonicalize-unseen-v0", "Canonicalize-macro-v0",
                   "Canonicalize-flat-v0"):
        assert env_id in ids
    env = npigym.make("Canonicalize-unseen-v0", image_size=8)
    assert isinstance(env, Canonicalize) and env.generator.split == "unseen"
    assert npigym.make("Canonicalize-flat-v0", image_size=8).library.has_inline
    with pytest.raises(TypeError, match="image_sise"):
        npigym.make("Canonicalize-v0", image_sise=8)


def test_gymnasium_adapter_flattens_the_local_view():
    import gymnasium

    env = gymnasium.make("npigym/Canonicalize-v0", image_size=8)
    obs, _ = env.reset(seed=0)
    # One level of keys; the image as a uint8 (H, W, 1) image, as SB3's CNN policies want it.
    assert obs["local/image"].shape == (8, 8, 1) and obs["local/image"].dtype == np.uint8
    assert obs["local/target_azimuth"].shape == (c.NUM_AZIMUTHS,)
    assert env.observation_space.contains(obs)
    obs, _, terminated, truncated, _ = env.step(np.asarray([c.HGOTO, 0, 0, 0]))
    assert env.observation_space.contains(obs) and not (terminated or truncated)
    env.close()


BAD_KNOBS = [
    ({"image_size": 7}, ValueError, "image_size"),
    ({"image_size": 257}, ValueError, "image_size"),
    ({"image_size": "32"}, ValueError, "image_size"),
    ({"image_size": (32,)}, ValueError, "image_size"),
    ({"image_size": (32, 0)}, ValueError, "image_size"),
    ({"image_size": True}, ValueError, "image_size"),
    ({"image_size": 32.0}, ValueError, "image_size"),
    ({"azimuth_range": (0, 360)}, ValueError, "azimuth_range"),
    ({"azimuth_range": (30, 0)}, ValueError, "azimuth_range"),
    ({"azimuth_range": (10, 20)}, ValueError, "multiple of 15"),
    ({"azimuth_range": (0.0, 15)}, ValueError, "multiple of 15"),
    ({"azimuth_range": 75}, ValueError, "pair"),
    ({"azimuth_range": (0, 15, 30)}, ValueError, "pair"),
    ({"elevation_range": (-15, 60)}, ValueError, "above the ground"),
    ({"elevation_range": (0, 105)}, ValueError, "elevation_range"),
    ({"elevation_range": (60, 0)}, ValueError, "elevation_range"),
    ({"elevation_range": (0, 10)}, ValueError, "multiple of 15"),
    ({"target": (0, 75)}, ValueError, "outside elevation_range"),
    ({"target": (10, 15)}, ValueError, "multiple of 15"),
    ({"target": "front"}, ValueError, "pair"),
    ({"min_rotations": -1}, ValueError, "min_rotations"),
    ({"min_rotations": 1.5}, ValueError, "min_rotations"),
    ({"min_rotations": True}, ValueError, "min_rotations"),
    ({"min_rotations": 3, "max_rotations": 2}, ValueError, "max_rotations"),
    ({"min_rotations": 9}, ValueError, "no start pose"),
    ({"azimuth_range": (0, 0), "elevation_range": (15, 15), "min_rotations": 1}, ValueError,
     "no start pose"),
    ({"num_models": 0}, ValueError, "num_models"),
    ({"num_models": 65537}, ValueError, "num_models"),
    ({"num_models": 2.5}, ValueError, "num_models"),
    ({"family": "trucks"}, ValueError, "family"),
    ({"family": []}, ValueError, "family"),
    ({"family": ["sedan", "sedan"]}, ValueError, "family"),
    ({"family": ["sedan", "boat"]}, ValueError, "family"),
    ({"family": 3}, TypeError, "family"),
    ({"split": "test"}, ValueError, "split"),
    ({"shape_seed": -1}, ValueError, "shape_seed"),
    ({"shape_seed": 2**32}, ValueError, "shape_seed"),
    ({"reward": "shaped"}, ValueError, "reward"),
    ({"observation": "pixels"}, ValueError, "observation"),
    ({"modes": "nested"}, ValueError, "modes"),
    ({"modes": {"ACT": "agent"}}, ValueError, "primitive"),
    ({"time_limit": 0}, ValueError, "time_limit"),
    ({"invalid_action_penalty": float("nan")}, ValueError, "invalid_action_penalty"),
    ({"render_mode": "video"}, ValueError, "render_mode"),
    ({"generator": RandomGenerator(), "split": "unseen"}, ValueError, "not both"),
    ({"generator": "random"}, TypeError, "CanonicalizeGenerator"),
]


@pytest.mark.parametrize("kwargs,error,match", BAD_KNOBS,
                         ids=[str(k) for k, _, _ in BAD_KNOBS])
def test_bad_knobs_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        Canonicalize(**kwargs)


def test_other_generators_are_refused():
    from npigym.envs.addition import RandomGenerator as AdditionGenerator

    with pytest.raises(TypeError, match="CanonicalizeGenerator"):
        Canonicalize(generator=AdditionGenerator())
