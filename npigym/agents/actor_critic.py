"""Advantage actor-critic (A2C), Anakin style: one jitted program runs envs, network and updates.

Read top to bottom, as PureJaxRL's single files:

1. **Configuration** (:class:`A2CConfig`) and the differentiable **hyperparameters**
   (:class:`HyperParams`: discount, lambda, loss weights, learning rate as JAX arrays in a
   pytree, so that ``jax.grad`` can later differentiate an update with respect to them; the
   meta-gradient agents build on exactly these functions).
2. **Loss pieces**, rlax style (pure functions of one env's time axis, chex-checked, vmapped by
   the caller): reward shaping from the machine's postconditions; lambda-returns over
   episodes back to back (termination: discount 0; truncation: bootstrap from
   ``extras["next_obs"]``); and *frame-aware* (semi-MDP) lambda-returns for program-machine envs.
3. **Rollout** (:func:`make_rollout`): ``lax.scan`` over T steps of ``vmap``-ped auto-reset envs,
   carrying the recurrent state; reusable to collect a batch with any params.
4. **Loss and update** (:func:`make_loss`, :func:`make_update`): pure functions of
   ``(params, opt_state, rollout, hyper)``.
5. **Training** (:func:`make_train`): ``init(key) -> TrainState`` and
   ``train(state) -> (state, metrics)``, which runs ``updates_per_call`` updates in a
   ``lax.scan`` inside one jitted call; ``jax.vmap`` over a batch of ``TrainState`` trains several
   seeds in one program. The host loop (``npigym.experiments.train``) only logs and checkpoints
   between calls.

Credit assignment in program-machine envs (``credit="frame"``): a decision taken in frame ``f``
is followed, in ``f``'s own time, by ``f``'s next decision after the callee returns (the nearest
later step at the same call depth; the steps in between are the callee's), and ``f``'s own
RETURN ends ``f``'s sub-episode. So every program is its own task, as in AlphaNPI, and with
``postcondition_bonus`` / ``postcondition_penalty`` it is rewarded by its own postcondition.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import optax
import rlax

from npigym.agents.networks import CoreState, Network
from npigym.batching import cond_any
from npigym.envs.machine.library import KIND_BUILTIN
from npigym.wrappers.auto_reset import VmapAutoResetWrapper

CREDIT_MODES = ("episode", "frame")
OPTIMIZERS = ("adam", "rmsprop", "sgd")


# ----------------------------------------------------------------------------------------------
# 1. Configuration and differentiable hyperparameters.
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class A2CConfig:
    """Settings of the actor-critic and its training loop.

    Attributes:
        num_envs: environments stepped in parallel (per seed).
        rollout_length: steps T of each rollout; one update per rollout.
        updates_per_call: updates run in one jitted call (a ``lax.scan``); the host logs and
            checkpoints between calls.
        optimizer: ``"adam"``, ``"rmsprop"`` or ``"sgd"``.
        learning_rate: step size (a differentiable hyperparameter, see :class:`HyperParams`).
        max_grad_norm: gradients are clipped to this global norm (``inf``: not clipped).
        rmsprop_decay: the decay of RMSProp's squared-gradient average (``optimizer="rmsprop"``).
        adam_eps_root: Adam's epsilon inside the square root; > 0 keeps meta-gradients through
            the update finite (optax #882).
        discount: the agent's discount (per decision of a frame with ``credit="frame"``).
        gae_lambda: lambda of the lambda-returns (GAE).
        entropy_cost: weight of the entropy bonus.
        uniform_kl_cost: weight of a penalty ``KL(uniform || policy)`` on every distribution
            the policy samples from (uniform over its valid entries). Unlike the entropy
            bonus it keeps pulling an action back whose probability has collapsed, which is
            what the digit heads of the hierarchical Addition agent need; see
            ``networks.categorical_uniform_kl``. 0: off (fixed, never meta-learned).
        value_cost: weight of the inner value loss.
        outer_discount: fixed discount of the outer value head's TD(lambda) target.
        outer_lambda: lambda of the outer value head's target.
        outer_value_cost: weight of the outer value loss (never meta-learned: it is
            stop-gradiented in the loss).
        normalize_advantage: scale advantages to zero mean, unit variance per batch.
        credit: ``"episode"`` (plain lambda-returns over time) or ``"frame"`` (frame-aware
            returns of program-machine envs, see the module docstring).
        postcondition_bonus: reward added when a program the agent RETURNs from holds its
            postcondition.
        postcondition_penalty: reward subtracted when it does not.
        subtree_reward: with ``credit="frame"``, a decision that calls an agent-executed
            program also earns the task reward (the env's, without shaping) collected while
            the callee ran: the option's reward of a semi-MDP. Without it a caller is paid only
            at its own steps, so ADD sees nothing of the progress its ADD1 calls make.
        root_return_penalty: reward subtracted when the task's root program RETURNs without
            its postcondition (the episode gives up): a price on stopping early that leaves
            the subprograms' rewards alone.
        step_penalty: reward subtracted on every step (a push towards short programs).
        learning_rate_decay_steps: env steps (per seed) over which the learning rate falls
            linearly to ``learning_rate_final_fraction`` of its value, then stays there
            (PureJaxRL's ``ANNEAL_LR``); 0 keeps it constant.
        learning_rate_final_fraction: where the decay ends, as a fraction of
            ``learning_rate``.
    """

    num_envs: int = 128
    rollout_length: int = 32
    updates_per_call: int = 20
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    max_grad_norm: float = 1.0
    rmsprop_decay: float = 0.99
    adam_eps_root: float = 1e-8
    discount: float = 0.99
    gae_lambda: float = 0.95
    entropy_cost: float = 0.01
    uniform_kl_cost: float = 0.0
    value_cost: float = 0.5
    outer_discount: float = 1.0
    outer_lambda: float = 0.95
    outer_value_cost: float = 0.5
    normalize_advantage: bool = False
    credit: str = "episode"
    postcondition_bonus: float = 0.0
    postcondition_penalty: float = 0.0
    root_return_penalty: float = 0.0
    subtree_reward: bool = False
    step_penalty: float = 0.0
    learning_rate_decay_steps: int = 0
    learning_rate_final_fraction: float = 0.1


class HyperParams(NamedTuple):
    """The hyperparameters the loss and update read, as float32 JAX scalars (differentiable)."""

    discount: chex.Array
    gae_lambda: chex.Array
    entropy_cost: chex.Array
    value_cost: chex.Array
    outer_discount: chex.Array
    outer_lambda: chex.Array
    outer_value_cost: chex.Array
    learning_rate: chex.Array

    @classmethod
    def from_config(cls, config: A2CConfig) -> "HyperParams":
        """The config's hyperparameters as float32 arrays (the values a meta-gradient may tune)."""
        return cls(*(jnp.asarray(getattr(config, f), jnp.float32) for f in cls._fields))


# ----------------------------------------------------------------------------------------------
# 2. Loss pieces (one env's time axis; vmap over the batch).
# ----------------------------------------------------------------------------------------------
def postcondition_shaping(returning: chex.Array, postcondition: chex.Array, bonus: float,
                          penalty: float) -> chex.Array:
    """Reward for the machine's per-program postconditions: ``+bonus`` when a program the agent
    RETURNs from did its job, ``-penalty`` when it did not, 0 on other steps."""
    chex.assert_equal_shape([returning, postcondition])
    held = returning & postcondition
    failed = returning & ~postcondition
    return bonus * held.astype(jnp.float32) - penalty * failed.astype(jnp.float32)


def episode_lambda_returns(r_t: chex.Array, discount_t: chex.Array, v_t: chex.Array,
                           v_boot_t: chex.Array, last_t: chex.Array, truncated_t: chex.Array,
                           lambda_: chex.Numeric) -> chex.Array:
    """Lambda-returns of one env's T steps, its episodes laid back to back by auto-reset.

    ``G_t = r_t + d_t ((1 - l_t) v'_t + l_t G_{t+1})`` with ``v'_t`` the value of the state after
    step t: ``v_{t+1}``, or on truncation ``v_boot_t``, the value of the real final observation
    (``extras["next_obs"]``; ``v_{t+1}`` is already the next episode's first state). The
    recursion stops at every episode end (``l_t = 0`` there): termination has ``d_t = 0``,
    truncation bootstraps. rlax's ``lambda_returns`` does the recursion; this function only
    lines up its inputs.

    Args:
        r_t: (T,) rewards.
        discount_t: (T,) discounts, the agent's discount times the env's (0 at termination).
        v_t: (T + 1,) values of the observations the steps were taken from, plus the final one.
        v_boot_t: (T,) values of ``next_obs`` (read where ``truncated_t``).
        last_t: (T,) bool, the step ended an episode (termination or truncation).
        truncated_t: (T,) bool, the step ended an episode by truncation.
        lambda_: scalar lambda.

    Returns:
        (T,) lambda-returns. Gradients flow through every input (pass stop-gradiented values for
        ordinary training; the meta-gradient keeps the discount's and lambda's).
    """
    chex.assert_rank([r_t, discount_t, v_t, v_boot_t, last_t, truncated_t], 1)
    chex.assert_equal_shape([r_t, discount_t, v_boot_t, last_t, truncated_t])
    chex.assert_shape(v_t, (r_t.shape[0] + 1,))
    v_next = jnp.where(truncated_t, v_boot_t, v_t[1:])
    lambda_t = lambda_ * (1.0 - last_t.astype(jnp.float32))
    return rlax.lambda_returns(r_t, discount_t, v_next, lambda_t, stop_target_gradients=False)


def frame_successors(depth_t: chex.Array, last_t: chex.Array, final_depth: chex.Array,
                     max_depth: int) -> chex.Array:
    """For each step, the index of the same frame's next decision (frame time, semi-MDP).

    A frame at depth ``d`` that makes a decision is still alive afterwards unless it RETURNs,
    and it can only end by its own RETURN, a decision at depth ``d``; so its next decision is
    the nearest later step at depth ``d`` in the same episode. Steps between belong to callees.

    Args:
        depth_t: (T,) int, call depth of the frame that decided at each step.
        last_t: (T,) bool, the step ended the episode.
        final_depth: () int, depth of the observation after the last step.
        max_depth: (static) number of call depths, the env's ``max_depth``.

    Returns:
        (T,) int32: the next decision's index in ``[t + 1, T - 1]``; ``T`` when it is the
        frame on top after the last step (bootstrap from the final observation); ``T + 1`` when
        it lies beyond the rollout or the episode (the frame was waiting for a callee).
        (After a RETURN the index is meaningless; the discount is 0 there.)
    """
    chex.assert_rank([depth_t, last_t, final_depth], [1, 1, 0])
    T = depth_t.shape[0]
    none = T + 1
    init = jnp.where(jnp.arange(max_depth) == final_depth, T, none).astype(jnp.int32)

    def body(nxt, xs):
        t, d, last = xs
        nxt = jnp.where(last, none, nxt)
        succ = nxt[d]
        return nxt.at[d].set(t), succ

    _, succ = jax.lax.scan(body, init, (jnp.arange(T), jnp.clip(depth_t, 0, max_depth - 1),
                                        last_t), reverse=True)
    return succ.astype(jnp.int32)


def callee_reward(r_t: chex.Array, next_t: chex.Array, ends_t: chex.Array) -> chex.Array:
    """The reward collected between each decision and its frame's next one (its callees').

    Args:
        r_t: (T,) rewards of the steps.
        next_t: (T,) from :func:`frame_successors`; past ``T - 1`` the sum runs to the end of
            the rollout (a pending caller's returns are masked out anyway).
        ends_t: (T,) bool, the decision ended its frame or the episode (no callee: 0).

    Returns:
        (T,) ``sum(r[t + 1 : next_t])``, 0 where ``ends_t``.
    """
    chex.assert_rank([r_t, next_t, ends_t], 1)
    T = r_t.shape[0]
    before = jnp.concatenate([jnp.zeros((1,), r_t.dtype), jnp.cumsum(r_t)])  # sum(r[:k])
    t = jnp.arange(T)
    stop = jnp.clip(next_t, t + 1, T)
    return jnp.where(ends_t, 0.0, before[stop] - before[t + 1])


def frame_lambda_returns(r_t: chex.Array, discount_t: chex.Array, v_t: chex.Array,
                         v_boot_t: chex.Array, boot_valid_t: chex.Array, next_t: chex.Array,
                         lambda_: chex.Numeric) -> Tuple[chex.Array, chex.Array]:
    """Lambda-returns along each frame's own decisions (see :func:`frame_successors`).

    ``G_t = r_t + d_t ((1 - l_t) v(next_t) + l_t G(next_t))``: the same recursion as
    ``rlax.lambda_returns`` but with the successor ``next_t`` instead of ``t + 1`` (rlax assumes
    consecutive steps, hence this hand-written reverse scan). ``d_t`` is 0 where the frame
    RETURNs (its sub-episode ends) or the episode terminates.

    Args:
        r_t: (T,) rewards of each decision.
        discount_t: (T,) discounts (0 where the frame's sub-episode ends).
        v_t: (T + 1,) values of the observations (the last one: after the rollout).
        v_boot_t: (T,) values of ``next_obs`` at truncation.
        boot_valid_t: (T,) bool, the episode was truncated right after this decision and
            ``next_obs`` is at this decision's depth (so ``v_boot_t`` is its frame's value).
        next_t: (T,) int, from :func:`frame_successors`.
        lambda_: scalar lambda.

    Returns:
        ``(G_t, valid_t)``: the returns and whether each is defined. A decision whose frame was
        waiting for a callee when the rollout or the episode was cut has no successor value
        to bootstrap from; it gets ``G_t = v_t`` and ``valid_t = False`` (mask it out).
    """
    chex.assert_rank([r_t, discount_t, v_t, v_boot_t, boot_valid_t, next_t], 1)
    T = r_t.shape[0]
    chex.assert_shape(v_t, (T + 1,))
    has_next = next_t <= T
    inner = next_t < T
    v_next = jnp.where(has_next, v_t[jnp.clip(next_t, 0, T)], v_boot_t)
    valid = (discount_t == 0) | has_next | boot_valid_t
    lambda_t = jnp.where(inner, lambda_, 0.0)

    def body(g, xs):
        t, r, d, v, lam, n = xs
        ret = r + d * ((1.0 - lam) * v + lam * g[jnp.clip(n, 0, T - 1)])
        return g.at[t].set(ret), ret

    _, returns = jax.lax.scan(body, jnp.zeros((T,), r_t.dtype),
                              (jnp.arange(T), r_t, discount_t, v_next, lambda_t, next_t),
                              reverse=True)
    return jnp.where(valid, returns, v_t[:-1]), valid


# ----------------------------------------------------------------------------------------------
# 3. Rollout.
# ----------------------------------------------------------------------------------------------
class ActorState(NamedTuple):
    """What the rollout carries from one step to the next (leaves have a leading env axis)."""

    env_state: Any
    obs: Any  # the observation the next decision is taken from
    first: chex.Array  # (B,) ``obs`` starts an episode
    invalid: chex.Array  # (B,) the step that produced ``obs`` was an invalid no-op
    core: CoreState  # the network's recurrent state before ``obs``
    episode_return: chex.Array  # (B,) env reward so far in the current episode
    episode_length: chex.Array  # (B,)


class Rollout(NamedTuple):
    """A batch of T steps of B envs, time-major.

    Attributes:
        obs: ``[T + 1, B]`` observations; the last one is only bootstrapped from.
        first: ``[T + 1, B]`` the observation starts an episode.
        invalid: ``[T + 1, B]`` the step that produced the observation was an invalid no-op
            (the env's ``extras["invalid_action"]``; False where the observation starts an
            episode and in envs that do not report invalid actions).
        action: ``[T, B, ...]`` actions taken: the policy's samples, except on a curriculum's
            forced steps, where they are the expert's that the env executed
            (``extras["executed_action"]``).
        reward: ``[T, B]`` env reward plus shaping (plus, with ``subtree_reward``, the env
            reward of the decision's callees).
        discount: ``[T, B]`` env discount (0 at termination, 1 otherwise).
        last: ``[T, B]`` the step ended an episode.
        truncated: ``[T, B]`` it ended it by truncation.
        frame_end: ``[T, B]`` the deciding frame's sub-episode ended (a RETURN, or
            termination in envs without frames).
        forced: ``[T, B]`` a curriculum's expert made this decision, not the agent (the loss
            ignores it; see ``npigym.agents.curriculum``).
        boot_value, boot_outer_value: ``[T, B]`` values of ``extras["next_obs"]`` where
            truncated (0 elsewhere), computed during the rollout.
        boot_valid: ``[T, B]`` truncated and ``next_obs`` at the deciding frame's depth.
        core: the network's recurrent state before ``obs[0]`` (``[B]`` leaves).
        episode_return, episode_length, episode_success, episode_program: ``[T, B]``
            statistics of the episode that ended at each step (read where ``last``): its env
            return, length, success, and the program it started in (the root unless a
            curriculum starts episodes in subprograms; 0 in envs without programs).
    """

    obs: Any
    first: chex.Array
    invalid: chex.Array
    action: chex.Array
    reward: chex.Array
    discount: chex.Array
    last: chex.Array
    truncated: chex.Array
    frame_end: chex.Array
    forced: chex.Array
    boot_value: chex.Array
    boot_outer_value: chex.Array
    boot_valid: chex.Array
    core: CoreState
    episode_return: chex.Array
    episode_length: chex.Array
    episode_success: chex.Array
    episode_program: chex.Array


def make_env(env: Any) -> VmapAutoResetWrapper:
    """The training env: a batch with auto-reset that resets only the envs that ended, keeping
    the real final observation in ``extras``."""
    return VmapAutoResetWrapper(env)


def init_actor(env: VmapAutoResetWrapper, network: Network, key: chex.PRNGKey,
               num_envs: int) -> ActorState:
    """Reset ``num_envs`` environments and the network's recurrent state."""
    env_state, timestep = env.reset(jax.random.split(key, num_envs))
    zeros = jnp.zeros((num_envs,), jnp.float32)
    return ActorState(env_state, timestep.observation, jnp.ones((num_envs,), bool),
                      jnp.zeros((num_envs,), bool), network.initial_state(num_envs), zeros,
                      jnp.zeros((num_envs,), jnp.int32))


def make_rollout(env: VmapAutoResetWrapper, network: Network, config: A2CConfig
                 ) -> Callable[[Any, ActorState, chex.PRNGKey], Tuple[ActorState, Rollout]]:
    """``rollout(params, actor, key) -> (actor, Rollout)``: T steps of every env, sampling
    actions from the policy with ``params`` (pure; the meta-gradient agents reuse it)."""
    program_env = network.info.is_program_env
    library = getattr(getattr(env, "unwrapped", env), "library", None)
    root_id = library.root if library is not None else 0
    kinds = jnp.asarray(library.kind) if library is not None else None

    def env_step(params, carry, key):
        actor: ActorState = carry
        core, out = network.step(params, actor.core, actor.obs, actor.first, key,
                                 invalid=actor.invalid)
        action = out.policy.action
        env_state, ts = env.step(actor.env_state, action)
        if "executed_action" in ts.extras:
            # A reverse curriculum's expert made this decision on forced steps: the rollout,
            # and the acting frame's previous decision, hold the call that was made (the loss
            # ignores forced steps, and its unroll records the same actions).
            action = ts.extras["executed_action"].astype(action.dtype)
            if network.config.previous_action:
                core = network.record(core, action)
        last = ts.last()
        invalid = jnp.asarray(ts.extras.get("invalid_action", jnp.zeros_like(last)), bool)
        truncated = last & (ts.discount > 0)
        reward = ts.reward.astype(jnp.float32) - config.step_penalty
        if program_env:
            # A RETURN reports its frame's program; a builtin call reports itself (and is a
            # decision of the calling frame, not the end of one).
            returned = ts.extras["returned_program"]
            returning = (returned >= 0) & (kinds[jnp.maximum(returned, 0)] != KIND_BUILTIN)
            reward += postcondition_shaping(returning, ts.extras["postcondition"],
                                            config.postcondition_bonus,
                                            config.postcondition_penalty)
            # The task's root program gave up: its RETURN ended the episode, failing. (Not a
            # curriculum episode's subprogram: a price on their RETURNs teaches them never
            # to return, as postcondition_penalty does.)
            gave_up = (last & ~truncated & (returned == root_id)
                       & ~ts.extras["postcondition"])
            reward -= config.root_return_penalty * gave_up.astype(jnp.float32)
            frame_end = returning
            boot_same_frame = ts.extras["next_obs"].depth == actor.obs.depth
            success = ts.extras["success"]
        else:
            frame_end = last & ~truncated
            boot_same_frame = jnp.ones_like(last)
            success = ts.extras.get("success", jnp.zeros_like(last))

        # Values of the real final observations, for bootstrapping truncated episodes. Under
        # vmap a per-env cond would compute them for every env at every step; a batch-level
        # cond skips the extra forward pass on the (most) steps where nothing was truncated,
        # and stays one branch with the agent vmapped over seeds (cond_any). The values are
        # targets, so the parameters are stop-gradiented (cond_any has no reverse mode), and
        # the branches take everything as operands (a custom_vmap must not close over tracers).
        def boot(operand):
            params, core, next_obs, invalid = operand
            not_first = jnp.zeros(invalid.shape[:1], bool)
            return network.value(params, core, next_obs, not_first, invalid)

        def no_boot(operand):
            zeros = jnp.zeros(operand[-1].shape[:1], jnp.float32)
            return zeros, zeros

        boot_value, boot_outer = cond_any(
            jnp.any(truncated), boot, no_boot,
            (jax.lax.stop_gradient(params), core, ts.extras["next_obs"], invalid))
        episode_return = actor.episode_return + ts.reward
        episode_length = actor.episode_length + 1
        step = dict(
            obs=actor.obs, first=actor.first, invalid=actor.invalid, action=action,
            reward=reward,
            task_reward=ts.reward.astype(jnp.float32),
            discount=ts.discount.astype(jnp.float32), last=last, truncated=truncated,
            frame_end=frame_end,
            forced=ts.extras.get("forced", jnp.zeros_like(last)),
            boot_value=jnp.where(truncated, boot_value, 0.0),
            boot_outer_value=jnp.where(truncated, boot_outer, 0.0),
            boot_valid=truncated & boot_same_frame,
            episode_return=jnp.where(last, episode_return, 0.0),
            episode_length=jnp.where(last, episode_length, 0),
            episode_success=last & success,
            # A curriculum's episodes say which program they started in; others start at
            # the root.
            episode_program=ts.extras.get("start_program", jnp.full(last.shape, root_id)))
        # An auto-reset observation follows no step of its episode.
        actor = ActorState(env_state, ts.observation, last, invalid & ~last, core,
                           jnp.where(last, 0.0, episode_return),
                           jnp.where(last, 0, episode_length))
        return actor, step

    def rollout(params, actor: ActorState, key: chex.PRNGKey) -> Tuple[ActorState, Rollout]:
        start_core = actor.core
        keys = jax.random.split(key, config.rollout_length)
        actor, steps = jax.lax.scan(lambda c, k: env_step(params, c, k), actor, keys)
        obs = jax.tree.map(lambda xs, x: jnp.concatenate([xs, x[None]]), steps.pop("obs"),
                           actor.obs)
        first = jnp.concatenate([steps.pop("first"), actor.first[None]])
        invalid = jnp.concatenate([steps.pop("invalid"), actor.invalid[None]])
        task_reward = steps.pop("task_reward")
        if config.subtree_reward:
            nxt = jax.vmap(frame_successors, in_axes=(1, 1, 0, None), out_axes=1)(
                obs.depth[:-1], steps["last"], obs.depth[-1], network.info.max_depth)
            ends = steps["frame_end"] | steps["last"]
            steps["reward"] = steps["reward"] + jax.vmap(callee_reward, in_axes=1, out_axes=1)(
                task_reward, nxt, ends)
        return actor, Rollout(obs=obs, first=first, invalid=invalid, core=start_core, **steps)

    return rollout


# ----------------------------------------------------------------------------------------------
# 4. Loss and update.
# ----------------------------------------------------------------------------------------------
def batch_lambda_returns(r: chex.Array, discount: chex.Array, v: chex.Array,
                         v_boot: chex.Array, rollout: Rollout, lambda_: chex.Numeric,
                         frame_credit: bool, max_depth: int) -> Tuple[chex.Array, chex.Array]:
    """Lambda-returns of a time-major ``[T, B]`` batch: :func:`episode_lambda_returns` per env,
    or with ``frame_credit`` (static) :func:`frame_lambda_returns` along each frame's own
    decisions. Returns ``(G, valid)``, both ``[T, B]`` (``valid`` is all True without frames).
    ``v`` is ``[T + 1, B]``; gradients flow through every input (the inner and the outer losses
    of the meta-gradient agents call this with their own values and discounts)."""
    if frame_credit:
        depth = rollout.obs.depth
        nxt = jax.vmap(frame_successors, in_axes=(1, 1, 0, None), out_axes=1)(
            depth[:-1], rollout.last, depth[-1], max_depth)
        return jax.vmap(frame_lambda_returns, in_axes=(1, 1, 1, 1, 1, 1, None),
                        out_axes=1)(r, discount, v, v_boot, rollout.boot_valid, nxt, lambda_)
    g = jax.vmap(episode_lambda_returns, in_axes=(1, 1, 1, 1, 1, 1, None), out_axes=1)(
        r, discount, v, v_boot, rollout.last, rollout.truncated, lambda_)
    return g, jnp.ones(g.shape, bool)


def make_loss(network: Network, config: A2CConfig
              ) -> Callable[[Any, HyperParams, Rollout], Tuple[chex.Array, Dict[str, Any]]]:
    """``loss(params, hyper, rollout) -> (loss, metrics)``.

    Policy gradient ``-E[A log pi(a)]`` + ``value_cost`` x squared TD(lambda) error
    - ``entropy_cost`` x entropy of the masked policy (+ ``uniform_kl_cost`` x its KL from
    uniform) + a TD(lambda) loss for the outer value head at the fixed outer discount. Values
    enter the returns stop-gradiented, but the returns themselves are not: ``jax.grad`` with
    respect to ``hyper`` (discount, lambda) sees them, as the meta-gradient needs (rlax's
    ``stop_target_gradients=False``, explicitly).
    """
    if config.credit not in CREDIT_MODES:
        raise ValueError(f"credit must be one of {CREDIT_MODES}, not {config.credit!r}")
    frame_credit = config.credit == "frame"

    def returns(r, disc, v, v_boot, rollout: Rollout, lam):
        return batch_lambda_returns(r, disc, v, v_boot, rollout, lam, frame_credit,
                                    network.info.max_depth)

    def loss(params, hyper: HyperParams, rollout: Rollout):
        # Evaluate the taken actions (and the final observation's value) in one unroll.
        pad = jnp.zeros_like(rollout.action[:1])
        out = network.unroll(params, rollout.core, rollout.obs, rollout.first,
                             jnp.concatenate([rollout.action, pad]), rollout.invalid)
        log_prob, entropy = out.policy.log_prob[:-1], out.policy.entropy[:-1]
        value, outer_value = out.value, out.outer_value  # [T + 1, B]

        continues = 1.0 - rollout.frame_end.astype(jnp.float32) if frame_credit else 1.0
        env_discount = rollout.discount * continues
        g, valid = returns(rollout.reward, hyper.discount * env_discount,
                           jax.lax.stop_gradient(value), rollout.boot_value, rollout,
                           hyper.gae_lambda)
        g_outer, _ = returns(rollout.reward, hyper.outer_discount * env_discount,
                             jax.lax.stop_gradient(outer_value), rollout.boot_outer_value,
                             rollout, hyper.outer_lambda)
        w = (valid & ~rollout.forced).astype(jnp.float32)
        n = jnp.maximum(jnp.sum(w), 1.0)

        def mean(x):
            return jnp.sum(w * x) / n

        advantage = g - jax.lax.stop_gradient(value[:-1])
        if config.normalize_advantage:
            mu = jax.lax.stop_gradient(mean(advantage))
            sd = jax.lax.stop_gradient(jnp.sqrt(mean((advantage - mu) ** 2)))
            advantage = (advantage - mu) / (sd + 1e-8)
        # advantage depends on the hyperparameters but not on params (its values are
        # stop-gradiented), so this is the usual policy gradient for params and keeps the
        # meta-gradient path (rlax.policy_gradient_loss's use_stop_gradient=True would cut it;
        # it also takes a single categorical, not our program + arguments log-probability).
        pg_loss = -mean(advantage * log_prob)
        value_loss = 0.5 * mean((g - value[:-1]) ** 2)
        outer_loss = 0.5 * mean((g_outer - outer_value[:-1]) ** 2)
        entropy_mean = mean(entropy)
        # (A policy head that reports no KL, such as the meta-gradient toy's, gives 0.)
        uniform_kl = mean(jnp.broadcast_to(out.policy.uniform_kl, out.policy.log_prob.shape)[:-1])
        total = (pg_loss + hyper.value_cost * value_loss - hyper.entropy_cost * entropy_mean
                 + jax.lax.stop_gradient(hyper.outer_value_cost) * outer_loss)
        if config.uniform_kl_cost:  # static
            total = total + config.uniform_kl_cost * uniform_kl
        metrics = dict(
            loss=total, pg_loss=pg_loss, value_loss=value_loss, outer_value_loss=outer_loss,
            entropy=entropy_mean, uniform_kl=uniform_kl,
            advantage=mean(g - jax.lax.stop_gradient(value[:-1])),
            # Mean outer advantage: ~0 for an unbiased outer critic (Bonnet et al.'s diagnostic).
            outer_advantage=mean(g_outer - jax.lax.stop_gradient(outer_value[:-1])),
            value=mean(value[:-1]), valid_fraction=jnp.mean(w))
        return total, metrics

    return loss


def make_optimizer(config: A2CConfig) -> optax.GradientTransformation:
    """Gradient clipping then the optimizer, with the learning rate injected into the state
    (``opt_state.hyperparams["learning_rate"]``) so :class:`HyperParams` can set it."""

    def build(learning_rate):
        if config.optimizer == "adam":
            opt = optax.adam(learning_rate, eps_root=config.adam_eps_root)
        elif config.optimizer == "rmsprop":
            opt = optax.rmsprop(learning_rate, decay=config.rmsprop_decay, eps=1e-5)
        elif config.optimizer == "sgd":
            opt = optax.sgd(learning_rate)
        else:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {config.optimizer!r}")
        # No clip transform at all for inf: clip_by_global_norm(inf) computes the unclipped
        # branch as t / norm * inf, whose 0 * inf gradient is NaN in a meta-gradient.
        if math.isinf(config.max_grad_norm):
            return opt
        return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), opt)

    return optax.inject_hyperparams(build)(learning_rate=config.learning_rate)


def learning_rate_scale(config: A2CConfig) -> optax.Schedule:
    """The multiplier on the learning rate by update count: 1 throughout, or a linear fall to
    ``learning_rate_final_fraction`` over ``learning_rate_decay_steps`` env steps."""
    if not config.learning_rate_decay_steps:
        return optax.constant_schedule(1.0)
    updates = config.learning_rate_decay_steps // (config.num_envs * config.rollout_length)
    return optax.linear_schedule(1.0, config.learning_rate_final_fraction,
                                 transition_steps=max(1, updates))


def make_update(network: Network, config: A2CConfig, optimizer: optax.GradientTransformation):
    """``update(params, opt_state, rollout, hyper) -> (params, opt_state, metrics)``: one
    gradient step on the loss (pure, differentiable with respect to ``hyper``)."""
    loss_fn = make_loss(network, config)

    def update(params, opt_state, rollout: Rollout, hyper: HyperParams):
        grads, metrics = jax.grad(loss_fn, has_aux=True)(params, hyper, rollout)
        opt_state = opt_state._replace(
            hyperparams={**opt_state.hyperparams, "learning_rate": hyper.learning_rate})
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return params, opt_state, metrics

    return update


# ----------------------------------------------------------------------------------------------
# 5. Training.
# ----------------------------------------------------------------------------------------------
class TrainState(NamedTuple):
    """Everything training carries (add a leading seed axis to train several seeds)."""

    params: Any
    opt_state: Any
    hyper: HyperParams
    actor: ActorState
    key: chex.PRNGKey
    update_count: chex.Array  # () int32
    env_steps: chex.Array  # () float32: exact up to 2**24; float64 is off in JAX by default


class Trainer(NamedTuple):
    """``init(key, hyper=None) -> TrainState``; ``train(state) -> (state, metrics)`` runs
    ``updates_per_call`` updates (metrics stacked on a leading axis); both pure and jittable,
    and ``jax.vmap``-able over a batch of seeds."""

    init: Callable[[chex.PRNGKey], TrainState]
    train: Callable[[TrainState], Tuple[TrainState, Dict[str, chex.Array]]]
    rollout: Callable[..., Tuple[ActorState, Rollout]]
    update: Callable[..., Tuple[Any, Any, Dict[str, chex.Array]]]
    network: Network
    env: VmapAutoResetWrapper
    config: A2CConfig


def make_train(env: Any, network: Network, config: A2CConfig) -> Trainer:
    """The actor-critic's training functions for ``env`` (any Jumanji env with a ``key`` in
    its state; program-machine envs get the program heads and frame-aware credit)."""
    if config.subtree_reward and config.credit != "frame":
        raise ValueError("subtree_reward needs credit='frame' (it pays a caller's decision "
                         "for its callees' steps)")
    if config.credit == "frame" and not network.info.is_program_env:
        raise ValueError("credit='frame' needs a program-machine env (its observation's depth "
                         "says which frame decides); use credit='episode'")
    train_env = make_env(env)
    optimizer = make_optimizer(config)
    rollout_fn = make_rollout(train_env, network, config)
    update_fn = make_update(network, config, optimizer)
    steps_per_update = config.num_envs * config.rollout_length
    library = getattr(getattr(env, "unwrapped", env), "library", None)
    root_id = library.root if library is not None else 0
    num_programs = library.num_programs if library is not None else 0
    learning_rate_scale_at = learning_rate_scale(config)
    # A curriculum that adapts to the learner (SubprogramStartWrapper with unlock_threshold).
    update_curriculum = getattr(env, "update_curriculum", None) if num_programs else None
    curriculum_metrics = getattr(env, "curriculum_metrics",
                                 lambda env_state: {"program_open": env_state.opened[0]})

    def init(key: chex.PRNGKey, hyper: Optional[HyperParams] = None) -> TrainState:
        # ``hyper`` (default: the config's) is an argument so that one program can train a
        # batch of hyperparameter settings: ``jax.vmap(init)(keys, hypers)`` (npigym.sweeps).
        key, env_key, net_key = jax.random.split(key, 3)
        actor = init_actor(train_env, network, env_key, config.num_envs)
        params = network.init(net_key, actor.obs, actor.first)
        hyper = HyperParams.from_config(config) if hyper is None else hyper
        return TrainState(params, optimizer.init(params), hyper, actor, key,
                          jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32))

    def train_step(state: TrainState, _) -> Tuple[TrainState, Dict[str, chex.Array]]:
        key, rollout_key = jax.random.split(state.key)
        actor, batch = rollout_fn(state.params, state.actor, rollout_key)
        hyper = state.hyper._replace(  # the base (possibly meta-learned) rate, scheduled
            learning_rate=state.hyper.learning_rate * learning_rate_scale_at(state.update_count))
        params, opt_state, metrics = update_fn(state.params, state.opt_state, batch, hyper)
        metrics["learning_rate"] = hyper.learning_rate
        # Sums, not means, so the host can pool episodes over the updates of a call. The
        # headline numbers count whole-task episodes (those started at the root).
        whole = batch.last & (batch.episode_program == root_id)
        metrics.update(episodes=jnp.sum(whole),
                       return_sum=jnp.sum(jnp.where(whole, batch.episode_return, 0.0)),
                       length_sum=jnp.sum(jnp.where(whole, batch.episode_length, 0)
                                          ).astype(jnp.float32),
                       success_sum=jnp.sum(whole & batch.episode_success),
                       truncated=jnp.sum(batch.truncated), reward_sum=jnp.sum(batch.reward),
                       # Where the env steps go: the lengths of the episodes that ended here
                       # (all of them, and those cut by the step limit, whose steps taught
                       # the task nothing it solved).
                       ended_steps=jnp.sum(batch.episode_length).astype(jnp.float32),
                       truncated_steps=jnp.sum(jnp.where(batch.truncated, batch.episode_length,
                                                         0)).astype(jnp.float32))
        if num_programs:
            # Episodes, successes and env steps per start program (a curriculum's tasks).
            onehot = jax.nn.one_hot(batch.episode_program, num_programs) * batch.last[..., None]
            metrics["program_episodes"] = jnp.sum(onehot, axis=(0, 1))
            metrics["program_success_sum"] = jnp.sum(
                onehot * batch.episode_success[..., None], axis=(0, 1))
            metrics["program_steps"] = jnp.sum(onehot * batch.episode_length[..., None],
                                               axis=(0, 1))
            if update_curriculum is not None:
                actor = actor._replace(env_state=update_curriculum(
                    actor.env_state, metrics["program_episodes"],
                    metrics["program_success_sum"]))
                metrics.update(curriculum_metrics(actor.env_state))
        state = TrainState(params, opt_state, state.hyper, actor, key, state.update_count + 1,
                           state.env_steps + steps_per_update)
        return state, metrics

    def train(state: TrainState) -> Tuple[TrainState, Dict[str, chex.Array]]:
        return jax.lax.scan(train_step, state, None, config.updates_per_call)

    return Trainer(init, train, rollout_fn, update_fn, network, train_env, config)


# Metrics that ``summarize`` pools over updates (sums and per-program vectors); the others are
# averaged.
POOLED_METRICS = ("episodes", "return_sum", "length_sum", "success_sum", "program_episodes",
                  "program_success_sum", "program_open", "program_steps", "ended_steps",
                  "truncated_steps")


def summarize(metrics: Dict[str, Any]) -> Dict[str, float]:
    """Pool the stacked metrics of one or more ``train`` calls (numpy, any leading axes) into
    per-call numbers: episode means over the episodes that ended, loss means over updates.

    An episode mean is NaN when no episode ended in those calls (for example while a
    curriculum runs only subprogram episodes), and so is a program's success before any of
    its episodes ended: "no data", not zero."""
    import numpy as np

    m = {k: np.asarray(v, np.float64) for k, v in metrics.items()}
    episodes = m["episodes"].sum()
    out: Dict[str, Any] = {"episodes": float(episodes)}
    for name, total in (("return", "return_sum"), ("length", "length_sum"),
                        ("success", "success_sum")):
        out[name] = float(m[total].sum() / episodes) if episodes else math.nan
    for name in ("ended_steps", "truncated_steps"):
        if name in m:
            out[name] = float(m[name].sum())
    if "program_episodes" in m:
        n = m["program_episodes"].reshape(-1, m["program_episodes"].shape[-1]).sum(0)
        s = m["program_success_sum"].reshape(-1, n.shape[0]).sum(0)
        out["program_episodes"] = n
        out["program_success"] = np.where(n > 0, s / np.maximum(n, 1), np.nan)
        if "program_steps" in m:
            out["program_steps"] = m["program_steps"].reshape(-1, n.shape[0]).sum(0)
    if "program_open" in m:  # at the last update
        out["program_open"] = m["program_open"].reshape(-1, m["program_open"].shape[-1])[-1]
    for k, v in m.items():
        if k not in POOLED_METRICS:
            out[k] = float(v.mean())
    return out


def select_seed(tree: Any, seed: Optional[int]) -> Any:
    """One seed's slice of a seed-batched pytree (``None``: the tree as it is)."""
    return tree if seed is None else jax.tree.map(lambda x: x[seed], tree)
