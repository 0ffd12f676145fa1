"""The actor-critic network: encoders, masks, autoregressive arguments, frame-stack memory."""

import dataclasses

import haiku as hk
import jax
import jax.numpy as jnp
import jumanji
import numpy as np
import pytest

import npigym
from npigym.agents.networks import (
    MASKED_LOGIT,
    NetworkConfig,
    ObservationEncoder,
    PatchConv2D,
    categorical_entropy,
    categorical_features,
    categorical_log_prob,
    categorical_uniform_kl,
    make_network,
    masked_logits,
)
from npigym.envs.addition import constants as addition_constants

TINY = NetworkConfig(encoder_layers=(16,), core_size=16, head_layers=(16,), embed_size=4,
                     conv_channels=(4, 4))


@pytest.fixture(scope="module")
def addition():
    env = npigym.make("Addition-v0", max_digits=3)
    net = make_network(env, TINY)
    state, ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 8))
    params = jax.jit(net.init)(jax.random.PRNGKey(1), ts.observation, jnp.ones((8,), bool))
    return env, net, params, state, ts


@pytest.mark.parametrize("kernel,stride", [(2, 2), (2, 1), (3, 2), (3, 1), (1, 1)])
def test_patch_conv__matches_lax_conv_and_its_gradients(kernel, stride):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 6, 3))
    f = hk.without_apply_rng(hk.transform(lambda x: PatchConv2D(5, kernel, stride)(x)))
    params = f.init(jax.random.PRNGKey(1), x)

    def lax_conv(params, x):
        w, b = params["patch_conv2_d"]["w"], params["patch_conv2_d"]["b"]
        return jax.lax.conv_general_dilated(x, w, (stride, stride), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")) + b

    np.testing.assert_allclose(f.apply(params, x), lax_conv(params, x), rtol=1e-5, atol=1e-5)
    # Gradients with respect to the weights and the input (a second layer's needs it).
    g_ours = jax.grad(lambda p, x: jnp.sum(jnp.sin(f.apply(p, x))), argnums=(0, 1))(params, x)
    g_lax = jax.grad(lambda p, x: jnp.sum(jnp.sin(lax_conv(p, x))), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_lax)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_network__empty_conv_channels_is_an_mlp_torso_on_the_flattened_board():
    import jumanji

    env = jumanji.make("Snake-v1", num_rows=6, num_cols=6)
    config = NetworkConfig(core="none", encoder_layers=(8,), head_layers=(8,),
                           conv_channels=(), conv_kernels=(), conv_strides=())
    net = make_network(env, config)
    state, ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 3))
    params = jax.jit(net.init)(jax.random.PRNGKey(1), ts.observation, jnp.ones((3,), bool))
    assert not [k for k in params if "conv" in k]
    # The encoder's first layer reads the whole 6x6x5 board and the scaled step count.
    first = params["actor_critic/~features/encoder/mlp/~/linear_0"]["w"]
    assert first.shape == (6 * 6 * 5 + 1, 8)
    _, out = jax.jit(net.step)(params, net.initial_state(3), ts.observation,
                               jnp.ones((3,), bool), jax.random.PRNGKey(2))
    assert out.policy.action.shape == out.value.shape == out.outer_value.shape == (3,)
    # By hand: the encoder is relu(flat(board) ++ step_count / limit) @ w + b).
    grid = ts.observation.grid.reshape(3, -1)
    steps = ts.observation.step_count.reshape(3, 1).astype(jnp.float32)
    spec = env.observation_spec.step_count
    steps = (steps - spec.minimum) / max(spec.maximum - spec.minimum, 1)
    b = params["actor_critic/~features/encoder/mlp/~/linear_0"]["b"]
    by_hand = jax.nn.relu(jnp.concatenate([grid, steps], -1) @ first + b)
    encoder = hk.without_apply_rng(hk.transform(lambda o: ObservationEncoder(
        env.observation_spec, config, skip=("action_mask",), name="encoder")(o)))
    layer = {"w": first, "b": b}
    np.testing.assert_allclose(encoder.apply({"encoder/mlp/~/linear_0": layer},
                                             ts.observation), by_hand, rtol=1e-5, atol=1e-6)


def test_masked_categorical__log_prob_and_entropy_by_hand():
    logits = jnp.array([1.0, 2.0, 0.5, 3.0])
    mask = jnp.array([True, True, False, True])
    z = masked_logits(logits, mask)
    assert z[2] == MASKED_LOGIT
    p = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(categorical_log_prob(z, jnp.array(1)), np.log(p[1]), rtol=1e-6)
    np.testing.assert_allclose(categorical_entropy(z), -(p * np.log(p)).sum(), rtol=1e-6)
    assert np.isfinite(categorical_log_prob(z, jnp.array(2)))  # finite, so no NaN in losses


def test_categorical_uniform_kl__by_hand_and_it_still_pulls_a_collapsed_action_back():
    valid = jnp.array([True, True, False])
    z = masked_logits(jnp.array([0.0, np.log(3.0), 5.0]), valid)
    # p = (1/4, 3/4) on the valid entries: KL(U || p) = 1/2 log(2) + 1/2 log(2/3).
    np.testing.assert_allclose(categorical_uniform_kl(z, valid), 0.5 * np.log(4 / 3),
                               rtol=1e-5)
    np.testing.assert_allclose(categorical_uniform_kl(jnp.zeros(4)), 0.0, atol=1e-6)
    # Action 1's probability has collapsed to e^-30: the entropy bonus no longer moves its
    # logit, the KL pulls it up by 1/n.
    collapsed = jnp.array([30.0, 0.0, 0.0])
    assert abs(float(jax.grad(categorical_entropy)(collapsed)[1])) < 1e-10
    np.testing.assert_allclose(jax.grad(categorical_uniform_kl)(collapsed)[1], -1 / 3,
                               atol=1e-6)


def test_network__never_picks_a_masked_program_or_a_disallowed_argument(addition):
    env, net, params, _, ts = addition
    lib = env.library
    n = 512
    key = jax.random.PRNGKey(3)
    obs = jax.tree.map(lambda x: jnp.repeat(x[:1], n, axis=0), ts.observation)
    # random masks (RETURN always allowed) and random programs in the frame
    masks = jax.random.bernoulli(key, 0.4, (n, lib.num_programs)).at[:, 0].set(True)
    obs = obs._replace(action_mask=masks,
                       program=jax.random.randint(key, (n,), 0, lib.num_programs))
    _, out = jax.jit(net.step)(params, net.initial_state(n), obs, jnp.ones((n,), bool),
                               jax.random.PRNGKey(4))
    action = np.asarray(out.policy.action)
    program = action[:, 0]
    assert np.asarray(masks)[np.arange(n), program].all()
    for s in range(3):
        used = lib.num_args[program] > s
        assert lib.arg_valid[program[used], s, action[used, 1 + s]].all()
        assert (action[~used, 1 + s] == 0).all()  # unused slots are canonical zeros
    # Both programs that take arguments appear, with several argument values.
    assert {1, 2} <= set(program.tolist()) and len(set(action[program == 2, 2])) > 3


def test_network__multi_discrete_log_prob_and_entropy_by_hand(addition):
    """With zero weights, each head's logits are its biases: log pi(a) is the program's
    log-probability plus those of the arguments the program uses, and the entropy likewise."""
    env, net, params, _, ts = addition
    lib = env.library
    rng = np.random.default_rng(0)
    params = jax.tree.map(jnp.zeros_like, params)
    heads = {k: v for k, v in params.items() if k.endswith("policy/program")
             or k.split("/")[-1] in ("arg0", "arg1", "arg2")}
    assert len(heads) == 4
    biases = {}
    for name in heads:
        b = rng.normal(size=params[name]["b"].shape).astype(np.float32)
        params[name] = {"w": params[name]["w"], "b": jnp.asarray(b)}
        biases[name.split("/")[-1]] = b
    obs = jax.tree.map(lambda x: x[:1], ts.observation)
    mask = np.asarray(obs.action_mask[0])
    unroll = jax.jit(net.unroll)
    for program, args in ((1, (3, 0, 0)), (2, (2, 7, 0)), (4, (0, 0, 0)), (0, (0, 0, 0))):
        if not mask[program]:
            continue
        action = jnp.asarray([[program, *args]])[None]  # [T=1, B=1, 4]
        out = unroll(params, net.initial_state(1), jax.tree.map(lambda x: x[None], obs),
                         jnp.ones((1, 1), bool), action)

        def log_softmax(z, valid):
            z = np.where(valid, z, -np.inf)
            return z - np.log(np.exp(z - z.max()).sum()) - z.max()

        def entropy(z, valid):
            lp = np.where(valid, log_softmax(z, valid), 0.0)
            return -np.sum(np.where(valid, np.exp(lp) * lp, 0.0))

        def uniform_kl(z, valid):
            lp = np.where(valid, log_softmax(z, valid), 0.0)
            return -np.log(valid.sum()) - lp.sum() / valid.sum()

        lp = log_softmax(biases["program"], mask)[program]
        ent = entropy(biases["program"], mask)
        kl = uniform_kl(biases["program"], mask)
        for s in range(lib.num_args[program]):
            valid = lib.arg_valid[program, s, : lib.arg_num_values[s]]
            lp += log_softmax(biases[f"arg{s}"], valid)[args[s]]
            ent += entropy(biases[f"arg{s}"], valid)
            kl += uniform_kl(biases[f"arg{s}"], valid)
        np.testing.assert_allclose(out.policy.log_prob[0, 0], lp, rtol=1e-5)
        np.testing.assert_allclose(out.policy.entropy[0, 0], ent, rtol=1e-5)
        np.testing.assert_allclose(out.policy.uniform_kl[0, 0], kl, rtol=1e-5)


def test_network__recurrent_state_resets_at_episode_start(addition):
    env, net, params, _, ts = addition
    step = jax.jit(net.step)
    key = jax.random.PRNGKey(0)
    fresh = net.initial_state(8)
    first, not_first = jnp.ones((8,), bool), jnp.zeros((8,), bool)
    _, ref = step(params, fresh, ts.observation, first, key)
    state = fresh
    for _ in range(3):  # build up some memory
        state, _ = step(params, state, ts.observation, not_first, key)
    _, cont = step(params, state, ts.observation, not_first, key)
    _, reset = step(params, state, ts.observation, first, key)
    assert not np.allclose(cont.value, ref.value)
    np.testing.assert_array_equal(reset.value, ref.value)
    np.testing.assert_array_equal(reset.policy.log_prob, ref.policy.log_prob)


def test_network__frame_stack_starts_callees_fresh_and_resumes_callers(addition):
    env, net, params, _, ts = addition
    step = jax.jit(net.step)
    key = jax.random.PRNGKey(0)
    no = jnp.zeros((8,), bool)
    obs0 = ts.observation
    obs1 = obs0._replace(depth=jnp.ones_like(obs0.depth), program=jnp.full_like(obs0.program, 4))
    s0, _ = step(params, net.initial_state(8), obs0, ~no, key)
    s0, _ = step(params, s0, obs0, no, key)  # caller memory after two decisions
    # A call: the callee's first step equals a step from a zero state at that depth.
    s1, callee = step(params, s0, obs1, no, key)
    zero_at_depth1 = net.initial_state(8)._replace(depth=jnp.zeros((8,), jnp.int32))
    _, fresh_callee = step(params, zero_at_depth1, obs1, no, key)
    np.testing.assert_allclose(callee.value, fresh_callee.value, rtol=1e-6)
    # A return: the caller resumes from its own state, whatever the callee did.
    s1, _ = step(params, s1, obs1, no, key)
    _, resumed = step(params, s1, obs0, no, key)
    _, direct = step(params, s0, obs0, no, key)
    np.testing.assert_allclose(resumed.value, direct.value, rtol=1e-6)


def test_network__record_replaces_the_acting_frames_previous_decision(addition):
    """``record`` after ``step`` (a curriculum's forced step: the env executed another action)
    leaves the state a step that took that action would have; without ``previous_action``
    it changes nothing."""
    env, plain, plain_params, _, ts = addition
    net = make_network(env, dataclasses.replace(TINY, previous_action=True))
    params = jax.jit(net.init)(jax.random.PRNGKey(1), ts.observation, jnp.ones((8,), bool))
    first, key = jnp.ones((8,), bool), jax.random.PRNGKey(0)
    step = jax.jit(net.step)
    sampled_state, out = step(params, net.initial_state(8), ts.observation, first, key)
    other = out.policy.action.at[:, 0].set((out.policy.action[:, 0] + 1) % env.library.num_programs)
    taken_state, _ = step(params, net.initial_state(8), ts.observation, first, key,
                          action=other)
    recorded = jax.jit(net.record)(sampled_state, other)
    assert not np.array_equal(sampled_state.frames[2], taken_state.frames[2])
    for a, b in zip(jax.tree.leaves(recorded), jax.tree.leaves(taken_state)):
        np.testing.assert_array_equal(a, b)
    state, _ = jax.jit(plain.step)(plain_params, plain.initial_state(8), ts.observation, first,
                                   key)
    for a, b in zip(jax.tree.leaves(plain.record(state, other)), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("memory", [
    {}, {"previous_action": True, "frame_step_features": 4},
    # the addition-hierarchical preset's kind of network: no core, step counts, thermometers
    {"core": "none", "frame_step_features": 4, "ordinal_encoding": True},
    # hierarchical Sorting's: previous call and whether the last step was an invalid no-op
    {"core": "none", "previous_action": True, "previous_invalid": True}])
def test_network__unroll_matches_step_by_step(addition, memory):
    """The loss's unroll (teacher-forced actions) reproduces the acting steps, also with the
    optional per-frame step counts, previous actions and invalid flags, and without a
    recurrent core."""
    env, net, params, state, ts = addition
    if memory:
        import dataclasses

        net = make_network(env, dataclasses.replace(TINY, **memory))
        params = jax.jit(net.init)(jax.random.PRNGKey(1), ts.observation, jnp.ones((8,), bool))
    step = jax.jit(net.step)
    core = net.initial_state(8)
    first = invalid = jnp.ones((8,), bool)  # an episode's first flag must be ignored
    obs_seq, first_seq, invalid_seq, actions, values = [], [], [], [], []
    env_step = jax.jit(jax.vmap(env.step))
    for t in range(6):
        core2, out = step(params, core, ts.observation, first, jax.random.PRNGKey(t),
                          invalid=invalid)
        obs_seq.append(ts.observation)
        first_seq.append(first)
        invalid_seq.append(invalid)
        actions.append(out.policy.action)
        values.append(out.value)
        state, ts = env_step(state, out.policy.action)
        # random flags, not the env's: this checks the plumbing, and these few steps of an
        # untrained policy may make no invalid call at all
        core, first = core2, ts.last()
        invalid = jax.random.bernoulli(jax.random.PRNGKey(100 + t), 0.5, (8,))
    stack = lambda xs: jax.tree.map(lambda *x: jnp.stack(x), *xs)  # noqa: E731
    out = jax.jit(net.unroll)(params, net.initial_state(8), stack(obs_seq),
                              jnp.stack(first_seq), jnp.stack(actions), jnp.stack(invalid_seq))
    np.testing.assert_allclose(out.value, jnp.stack(values), rtol=1e-5, atol=1e-6)


def test_network__feed_forward_core_remembers_only_the_saturating_step_count(addition):
    """With ``core="none"`` a frame's only memory is its decision count, one-hot up to
    ``frame_step_features - 1``: the same observation gives a different output at each count
    until the count saturates, then the same output for ever (what makes a memoryless ADD
    frame behave the same at every column of a long instance)."""
    import dataclasses

    env, _, _, _, ts = addition
    net = make_network(env, dataclasses.replace(TINY, core="none", frame_step_features=3))
    first = jnp.ones((8,), bool)
    params = jax.jit(net.init)(jax.random.PRNGKey(1), ts.observation, first)
    step = jax.jit(lambda c, f: net.step(params, c, ts.observation, f, None, True))
    core, values = net.initial_state(8), []
    for t in range(5):
        core, out = step(core, first if t == 0 else ~first)
        values.append(np.asarray(out.value))
    assert not np.allclose(values[0], values[1]) and not np.allclose(values[1], values[2])
    np.testing.assert_array_equal(values[2], values[3])
    np.testing.assert_array_equal(values[3], values[4])


def test_network__previous_invalid_flag_reaches_the_outputs_only_when_configured(addition):
    """With ``previous_invalid`` the same input gives a different output after an invalid
    step, except at an episode's first step (which follows no step of its episode); without
    it the flag is ignored."""
    env, net, params, _, ts = addition
    flagged = make_network(env, dataclasses.replace(TINY, previous_invalid=True))
    flagged_params = jax.jit(flagged.init)(jax.random.PRNGKey(1), ts.observation,
                                           jnp.ones((8,), bool))
    yes, no = jnp.ones((8,), bool), jnp.zeros((8,), bool)

    def values(n, p, first, invalid):
        return np.asarray(n.value(p, n.initial_state(8), ts.observation, first, invalid)[0])

    assert not np.allclose(values(flagged, flagged_params, no, yes),
                           values(flagged, flagged_params, no, no))
    np.testing.assert_array_equal(values(flagged, flagged_params, yes, yes),
                                  values(flagged, flagged_params, yes, no))
    np.testing.assert_array_equal(values(flagged, flagged_params, no, None),
                                  values(flagged, flagged_params, no, no))
    np.testing.assert_array_equal(values(net, params, no, yes), values(net, params, no, no))


@pytest.mark.parametrize("env_id", ["Snake-v1", "Game2048-v1"])
def test_network__builds_for_jumanji_envs(env_id):
    env = jumanji.make(env_id)
    net = make_network(env, TINY)
    _, ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 4))
    params = jax.jit(net.init)(jax.random.PRNGKey(1), ts.observation, jnp.ones((4,), bool))
    _, out = jax.jit(net.step)(params, net.initial_state(4), ts.observation, jnp.ones((4,), bool),
                      jax.random.PRNGKey(2))
    assert out.policy.action.shape == (4,)
    assert np.asarray(ts.observation.action_mask)[np.arange(4), out.policy.action].all()


def test_network__encodes_canonicalize_images_with_the_patch_cnn():
    env = npigym.make("Canonicalize-v0")
    net = make_network(env, TINY)
    _, ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 2))
    params = jax.jit(net.init)(jax.random.PRNGKey(1), ts.observation, jnp.ones((2,), bool))
    convs = [k for k in params if "image_conv" in k]
    assert len(convs) == 2 and params[convs[0]]["w"].shape == (2, 2, 1, 4)
    _, out = jax.jit(net.step)(params, net.initial_state(2), ts.observation,
                               jnp.ones((2,), bool), jax.random.PRNGKey(2))
    assert np.asarray(ts.observation.action_mask)[np.arange(2), out.policy.action[:, 0]].all()


def test_categorical_features__one_hot_then_thermometer():
    f = categorical_features(jnp.array([0, 3]), 5, ordinal=True)
    np.testing.assert_array_equal(f, [[1, 0, 0, 0, 0, 0, 0, 0, 0],
                                      [0, 0, 0, 1, 0, 1, 1, 1, 0]])
    np.testing.assert_array_equal(categorical_features(jnp.array([3]), 5, ordinal=False),
                                  [[0, 0, 0, 1, 0]])
    # Addition's local view: one cell per row, each a one-hot and a thermometer of its codes.
    env = npigym.make("Addition-v0", max_digits=3)
    config = dataclasses.replace(TINY, ordinal_encoding=True)
    net = make_network(env, config)
    _, ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 2))
    params = jax.jit(net.init)(jax.random.PRNGKey(1), ts.observation, jnp.ones((2,), bool))
    w = next(v["w"] for k, v in params.items() if k.endswith("local_encoder/mlp/~/linear_0"))
    n = addition_constants.NUM_CELL_VALUES
    assert w.shape == (addition_constants.NUM_ROWS * (n + n - 1), 16)


def test_network__critic_layers_gives_separate_critics_that_share_nothing_with_the_policy():
    env = jumanji.make("Snake-v1", num_rows=6, num_cols=6)
    config = NetworkConfig(core="none", encoder_layers=(8,), head_layers=(8,),
                           critic_layers=(12, 6), conv_channels=(), conv_kernels=(),
                           conv_strides=())
    net = make_network(env, config)
    _, ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 3))
    first = jnp.ones((3,), bool)
    params = jax.jit(net.init)(jax.random.PRNGKey(1), ts.observation, first)
    # The actor's parameter names are those of the shared-torso network (checkpoints and
    # skills keep loading); each critic has its own encoder of the critic widths.
    assert "actor_critic/~features/encoder/mlp/~/linear_0" in params
    assert not [k for k in params if "/value" in k and "critic/" not in k]
    for critic in ("critic", "outer_critic"):
        prefix = f"actor_critic/~heads/{critic}"
        assert params[f"{prefix}/encoder/mlp/~/linear_0"]["w"].shape == (181, 12)
        assert params[f"{prefix}/encoder/mlp/~/linear_1"]["w"].shape == (12, 6)
        assert params[f"{prefix}/value"]["w"].shape == (6, 1)

    def out(p):
        _, o = net.step(p, net.initial_state(3), ts.observation, first, None, True,
                        action=jnp.zeros((3,), jnp.int32))
        return o

    def touched(f):
        g = jax.grad(lambda p: jnp.sum(f(out(p))))(params)
        return {k for k, v in g.items() if any(jnp.any(x != 0) for x in jax.tree.leaves(v))}

    assert touched(lambda o: o.value) == {k for k in params if "/critic/" in k}
    assert touched(lambda o: o.outer_value) == {k for k in params if "/outer_critic/" in k}
    critics = {k for k in params if "/critic/" in k or "/outer_critic/" in k}
    assert touched(lambda o: o.policy.log_prob) == set(params) - critics
