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
