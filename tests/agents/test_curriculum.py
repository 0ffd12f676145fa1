"""Episodes that start inside subprograms (the hierarchical curriculum)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npigym
from npigym.agents.curriculum import SubprogramStartWrapper


@pytest.fixture(scope="module")
def episodes():
    """The expert plays 96 curriculum episodes (some with forced prefixes) to their end."""
    env = npigym.make("Addition-v0", max_digits=4)
    wrapper = SubprogramStartWrapper(env, {"ADD": 1, "ADD1": 1, "CARRY": 1, "LSHIFT": 1},
                                     max_forced=2)

    @jax.jit
    def run(key):
        state, ts = wrapper.reset(key)
        start = (ts.extras["start_program"], state.start_depth, ts.observation.program,
                 ts.observation.depth)

        def cond(c):
            return ~c[1].last() & (c[2] < 300)

        def body(c):
            s, t, n, forced = c
            s, t = wrapper.step(s, env.expert_action(s.inner))
            return s, t, n + 1, forced + t.extras["forced"].astype(jnp.int32)

        _, ts, n, forced = jax.lax.while_loop(cond, body, (state, ts, 0, 0))
        return (*start, ts.extras["success"], ts.discount, n, forced)

    out = jax.vmap(run)(jax.random.split(jax.random.PRNGKey(0), 96))
    return env, [np.asarray(x) for x in out]


def test_curriculum__starts_in_the_chosen_program_frame(episodes):
    env, (program, depth, obs_program, obs_depth, *_) = episodes
    names = {env.library.names[p] for p in program}
    assert names == {"ADD", "ADD1", "CARRY", "LSHIFT"}
    np.testing.assert_array_equal(program, obs_program)
    np.testing.assert_array_equal(depth, obs_depth)
    assert (depth[program == env.library.id("ADD")] == 0).all()
    assert (depth[program == env.library.id("CARRY")] == 2).all()


def test_curriculum__sub_episodes_end_at_the_programs_return_with_its_postcondition(episodes):
    env, (program, _, _, _, success, discount, length, forced) = episodes
    assert success.all()  # the expert finishes every task correctly
    assert (discount == 0).all()  # each ends by termination, at the program's RETURN
    lshift = program == env.library.id("LSHIFT")
    assert (length[lshift] == 5).all()  # four moves and RETURN
    assert (forced < length).all() and forced.max() > 0  # the agent always RETURNs itself


def test_curriculum__reports_the_executed_action_the_experts_where_forced():
    """``extras["executed_action"]`` is the action the env stepped: the expert's on a forced
    step, the agent's otherwise; reset reports the same leaves (auto-reset needs them)."""
    from npigym.envs.machine.library import RETURN_ID

    env = npigym.make("Addition-v0", max_digits=4)
    wrapper = SubprogramStartWrapper(env, {"ADD1": 1, "CARRY": 1, "LSHIFT": 1}, max_forced=4)
    agent = jnp.array([RETURN_ID, 0, 0, 0], jnp.int32)

    @jax.jit
    def first_step(key):
        state, reset_ts = wrapper.reset(key)
        expert = env.expert_action(state.inner)
        _, ts = wrapper.step(state, agent)
        return reset_ts.extras, ts.extras, expert

    reset_extras, extras, expert = jax.vmap(first_step)(
        jax.random.split(jax.random.PRNGKey(5), 32))
    assert jax.tree.structure(reset_extras) == jax.tree.structure(extras)
    for a, b in zip(jax.tree.leaves(reset_extras), jax.tree.leaves(extras)):
        assert a.shape == b.shape and a.dtype == b.dtype
    forced = np.asarray(extras["forced"])
    executed, expert = np.asarray(extras["executed_action"]), np.asarray(expert)
    assert forced.any() and (~forced).any() and (expert[forced, 0] != RETURN_ID).all()
    np.testing.assert_array_equal(executed[forced], expert[forced])
    np.testing.assert_array_equal(executed[~forced],
                                  np.broadcast_to(agent, executed[~forced].shape))


def test_curriculum__a_program_is_drawn_as_often_as_weighted_and_at_several_calls():
    """CARRY is not called by every instance: instances without a carry are replaced, not
    turned into whole-task episodes, and the start is one of its first max_skip + 1 calls."""
    from npigym.envs.addition import constants as c

    env = npigym.make("Addition-v0", max_digits=5)
    wrapper = SubprogramStartWrapper(env, {"CARRY": 1}, max_skip=2)
    states, ts = jax.jit(jax.vmap(wrapper.reset))(jax.random.split(jax.random.PRNGKey(5), 512))
    in_carry = np.asarray(ts.extras["start_program"]) == env.library.id("CARRY")
    assert in_carry.mean() > 0.85  # was 0.32 with "the (skip + 1)-th call, else the root"
    columns = np.asarray(states.inner.task.pointers[:, c.OUT])[in_carry]
    assert len(np.unique(columns)) >= 3


def test_curriculum__rejects_bad_programs_and_weights():
    env = npigym.make("Addition-v0", max_digits=3)
    with pytest.raises(KeyError, match="no program 'NOPE'"):
        SubprogramStartWrapper(env, {"NOPE": 1})
    with pytest.raises(ValueError, match="must not all be 0"):
        SubprogramStartWrapper(env, {"ADD1": 0})
    with pytest.raises(ValueError, match="executed by the agent"):
        SubprogramStartWrapper(npigym.make("Addition-v0", modes="macro"), {"ADD1": 1})
    with pytest.raises(ValueError, match="expert"):
        SubprogramStartWrapper(npigym.make("Addition-v0", modes="flat"), {"ADD": 1})


@pytest.fixture(scope="module")
def unlocking():
    """A curriculum that opens callers once their callees succeed (threshold 0.8)."""
    env = npigym.make("Addition-v0", max_digits=3)
    wrapper = SubprogramStartWrapper(env, {"ADD": 1, "ADD1": 1, "CARRY": 1, "LSHIFT": 1},
                                     unlock_threshold=0.8, success_decay=0.5)
    ids = {name: env.library.id(name) for name in ("ADD", "ADD1", "CARRY", "LSHIFT")}
    return wrapper, ids


def test_curriculum__unlock_draws_only_programs_that_call_no_curriculum_program(unlocking):
    wrapper, ids = unlocking
    states, ts = jax.jit(jax.vmap(wrapper.reset))(jax.random.split(jax.random.PRNGKey(1), 64))
    drawn = np.asarray(ts.extras["start_program"])
    # ADD1 calls CARRY and ADD calls ADD1 and LSHIFT: only CARRY and LSHIFT are drawn. The
    # root is still the fallback for a CARRY draw that finds no carry within the expert's
    # first max_prefix_steps steps (fresh instances included).
    assert set(drawn.tolist()) <= {ids["CARRY"], ids["LSHIFT"], ids["ADD"]}
    assert (drawn == ids["CARRY"]).any() and (drawn == ids["LSHIFT"]).any()
    assert (drawn == ids["ADD"]).mean() < 0.1
    opened = np.asarray(states.opened[0])
    assert opened[ids["CARRY"]] and opened[ids["LSHIFT"]]
    assert not opened[ids["ADD1"]] and not opened[ids["ADD"]]


def test_curriculum__unlock_opens_callers_once_their_callees_pass_the_threshold(unlocking):
    wrapper, ids = unlocking
    num = wrapper.library.num_programs
    states, _ = jax.jit(jax.vmap(wrapper.reset))(jax.random.split(jax.random.PRNGKey(2), 4))
    update = jax.jit(wrapper.update_curriculum)

    def report(states, rates):
        episodes = np.zeros(num, np.float32)
        successes = np.zeros(num, np.float32)
        for name, rate in rates.items():
            episodes[ids[name]] = 10
            successes[ids[name]] = 10 * rate
        return update(states, jnp.asarray(episodes), jnp.asarray(successes))

    def is_open(states, name):
        return bool(states.opened[0, ids[name]])

    # CARRY succeeds, LSHIFT does not: ADD1 opens after a few updates, ADD stays closed.
    for _ in range(4):
        states = report(states, {"CARRY": 1.0, "LSHIFT": 0.5})
    assert is_open(states, "ADD1") and not is_open(states, "ADD")
    np.testing.assert_allclose(states.success[0, ids["CARRY"]], 1 - 0.5 ** 4)
    # No episodes of a program leave its rate alone.
    assert float(states.success[1, ids["ADD1"]]) == 0.0
    # ADD opens only when ADD1 and LSHIFT are both good; opened programs stay open.
    for _ in range(4):
        states = report(states, {"ADD1": 1.0, "LSHIFT": 1.0, "CARRY": 0.0})
    assert is_open(states, "ADD") and is_open(states, "ADD1")
    np.testing.assert_array_equal(states.opened[0], states.opened[3])  # every row the same
    # The next episodes are drawn from all four, and keep the curriculum's state.
    nxt, ts = jax.jit(jax.vmap(wrapper.next_episode))(
        jax.tree.map(lambda x: jnp.repeat(x[:1], 64, axis=0), states),
        jax.random.split(jax.random.PRNGKey(3), 64))
    assert set(np.asarray(ts.extras["start_program"]).tolist()) == set(ids.values())
    np.testing.assert_array_equal(nxt.success, jnp.repeat(states.success[:1], 64, axis=0))


def test_curriculum__auto_reset_carries_the_curriculum_into_the_next_episode(unlocking):
    from npigym.wrappers import VmapAutoResetWrapper

    wrapper, ids = unlocking
    batch = VmapAutoResetWrapper(wrapper, resets_per_pass=4)
    states, _ = jax.jit(batch.reset)(jax.random.split(jax.random.PRNGKey(4), 16))
    # Only LSHIFT open: every episode after the first ones starts in LSHIFT.
    only = jnp.zeros_like(states.opened).at[:, ids["LSHIFT"]].set(True)
    states = states.replace(opened=only)

    @jax.jit
    def run(states):
        def body(states, _):
            actions = jax.vmap(lambda s: wrapper.unwrapped.expert_action(s.inner))(states)
            states, ts = batch.step(states, actions)
            return states, (ts.last(), states.program)
        return jax.lax.scan(body, states, None, 12)

    states, (last, program) = run(states)
    assert np.asarray(last).sum() > 16  # every env finished an episode, some several
    np.testing.assert_array_equal(np.asarray(states.opened), np.asarray(only))
    # After an env's first episode ends, it only ever starts LSHIFT.
    after = np.cumsum(np.asarray(last), axis=0) > 0
    assert (np.asarray(program)[after] == ids["LSHIFT"]).all()


def test_curriculum__rejects_bad_unlock_settings():
    env = npigym.make("Addition-v0", max_digits=3)
    with pytest.raises(ValueError, match="unlock_threshold must be in"):
        SubprogramStartWrapper(env, {"ADD": 1}, unlock_threshold=1.5)
    with pytest.raises(ValueError, match="success_decay must be in"):
        SubprogramStartWrapper(env, {"ADD": 1}, success_decay=1.0)


def test_curriculum__shadow_starts_are_states_of_the_experts_walk_at_every_call():
    """``starts="shadow"``: episodes after the first start from the background walk's state
    before a call of the drawn program. The expert, playing each episode from its start,
    finishes the program with its postcondition (a start the expert's trace reaches), the
    drawn programs start in their own frames, and the starts are spread over a program's
    first ``max_skip + 1`` calls."""
    from npigym.envs.addition import constants as c
    from npigym.wrappers import VmapAutoResetWrapper

    env = npigym.make("Addition-v0", max_digits=4, nines=0.3)
    wrapper = SubprogramStartWrapper(env, {"ADD": 1, "ADD1": 1, "CARRY": 1, "LSHIFT": 1},
                                     max_forced=2, starts="shadow")
    batch = VmapAutoResetWrapper(wrapper)
    ids = {name: env.library.id(name) for name in ("ADD", "ADD1", "CARRY", "LSHIFT")}

    @jax.jit
    def run(keys):
        states, ts = batch.reset(keys)

        def body(states, _):
            actions = jax.vmap(lambda s: env.expert_action(s.inner))(states)
            states, ts = batch.step(states, actions)
            # What the next episode (after an auto-reset) starts with.
            start = (states.program, ts.observation.program, ts.observation.depth,
                     states.inner.task.pointers[:, c.OUT])
            return states, (ts.last(), ts.extras["success"], ts.extras["start_program"],
                            start)

        return jax.lax.scan(body, states, None, 160)

    _, (last, success, ended_program, start) = run(jax.random.split(jax.random.PRNGKey(3), 32))
    last, success, ended_program = (np.asarray(x) for x in (last, success, ended_program))
    program, obs_program, obs_depth, out_column = (np.asarray(x)[last] for x in start)
    assert last.sum() > 300
    assert success[last].all()  # every episode, from every start, is finished right
    np.testing.assert_array_equal(program, obs_program)  # in the drawn program's frame
    expected_depth = {ids["ADD"]: 0, ids["ADD1"]: 1, ids["CARRY"]: 2, ids["LSHIFT"]: 1}
    np.testing.assert_array_equal(obs_depth, [expected_depth[p] for p in program])
    drawn = np.bincount(ended_program[last], minlength=env.library.num_programs)
    assert all(drawn[i] > 0.15 * last.sum() for i in ids.values())  # weights 1:1:1:1
    # ADD1 starts at each of its first max_skip + 1 = 3 calls (columns), as in prefix mode.
    assert len(np.unique(out_column[program == ids["ADD1"]])) == 3


def test_curriculum__rejects_an_unknown_start_source():
    env = npigym.make("Addition-v0", max_digits=3)
    with pytest.raises(ValueError, match="starts must be 'prefix' or 'shadow'"):
        SubprogramStartWrapper(env, {"ADD1": 1}, starts="replay")
