"""Multiplication-v0: the expert multiplies exactly at every size and posing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npigym
from npigym.envs.multiplication import Multiplication, ProblemGenerator, RandomGenerator, task
from npigym.envs.multiplication import constants as c
from tests.envs.composition_helpers import episodes, row_int

PROBLEMS = [(96, 125), (7, 8), (999, 999), (123, 45), (5, 909), (1, 1)]


def products_right(out) -> bool:
    pads = out["state"].task.pad
    return all(row_int(p[c.ACC]) == row_int(p[c.A]) * row_int(p[c.B]) for p in pads)


@pytest.mark.parametrize("modes", [None, "hierarchical"])
def test_expert_solves_small_problems_in_each_posing(modes):
    env = Multiplication(generator=ProblemGenerator(PROBLEMS), reward="dense", modes=modes)
    out = episodes(env, 24)
    assert out["success"].all() and (out["invalid"] == 0).all()
    assert products_right(out)
    # Dense progress sums to 1 over an episode, plus the success reward.
    np.testing.assert_allclose(out["ret"], 2.0, atol=1e-5)
    assert (out["steps"] <= jax.vmap(task.default_step_limit)(out["state"].task) // 2).all()


def test_expert_solves_random_problems_up_to_100_digits():
    env = Multiplication(min_digits=90, max_digits=100, min_multiplier_digits=1,
                         max_multiplier_digits=3)
    out = episodes(env, 8, seed=5)
    assert out["success"].all() and products_right(out)
    assert (out["state"].task.len_a >= 90).all()


def test_flat_posing_has_no_expert_but_steps():
    env = npigym.make("Multiplication-flat-v0", max_digits=2)
    state, ts = env.reset(jax.random.PRNGKey(0))
    assert set(env.library.names[1:][:2]) == {"MOVE_PTR", "WRITE"}
    mask = np.asarray(ts.observation.action_mask)
    callable_ = {env.library.names[i] for i in np.flatnonzero(mask)}
    assert callable_ == {"RETURN", "MOVE_PTR", "WRITE", "COMMIT", "NEXT"}
    with pytest.raises(ValueError, match="inlines"):
        env.expert_action(state)
    # WRITE(OUT, 7) then COMMIT: ACC becomes 7, OUT is cleared.
    state, ts = env.step(state, jnp.asarray([env.library.id("WRITE"), 3, 7, 0]))
    state, ts = env.step(state, jnp.asarray([c.COMMIT, 0, 0, 0]))
    assert not bool(ts.extras["invalid_action"])
    assert row_int(np.asarray(state.task.pad[c.ACC])) == 7
    assert row_int(np.asarray(state.task.pad[c.OUT])) == 0 and int(state.task.reps) == 1


def test_commit_needs_a_sum_and_next_a_settled_digit():
    env = Multiplication(generator=ProblemGenerator([(12, 3)]))
    state, _ = env.reset(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    _, ts = step(state, jnp.asarray([c.COMMIT, 0, 0, 0]))
    assert bool(ts.extras["invalid_action"])
    _, ts = step(state, jnp.asarray([c.NEXT, 0, 0, 0]))  # 3 additions still to make
    assert bool(ts.extras["invalid_action"])
    for _ in range(3):
        state, _ = step(state, jnp.asarray([c.ADD, 0, 0, 0]))
        state, _ = step(state, jnp.asarray([c.COMMIT, 0, 0, 0]))
    state, ts = step(state, jnp.asarray([c.NEXT, 0, 0, 0]))
    assert not bool(ts.extras["invalid_action"]) and int(state.task.b_pointer) == env.width - 3
    _, ts = step(state, jnp.asarray([c.NEXT, 0, 0, 0]))  # past the multiplier's top digit
    assert bool(ts.extras["invalid_action"])


def test_returning_before_the_product_fails():
    env = Multiplication(generator=ProblemGenerator([(12, 3)]))
    state, _ = env.reset(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    state, ts = step(state, jnp.asarray([c.ADD, 0, 0, 0]))
    assert bool(ts.extras["postcondition"])  # ADD's own postcondition, on the view
    state, ts = step(state, jnp.asarray([c.COMMIT, 0, 0, 0]))
    _, ts = step(state, jnp.asarray([c.RETURN, 0, 0, 0]))
    assert ts.last() and not bool(ts.extras["success"]) and float(ts.reward) == 0.0


def test_addition_view_shows_the_shifted_multiplicand_with_zeros():
    pad = ProblemGenerator([(37, 40)])(jax.random.PRNGKey(0))
    pad = pad.replace(b_pointer=pad.b_pointer - 1)  # the tens digit of 40
    view = task.addition_view(pad)
    assert row_int(np.asarray(view.pad[1])) == 370
    assert int(view.num_digits) == 3
    back = task.embed_addition(pad, view)
    np.testing.assert_array_equal(back.pad, pad.pad)


def test_residues_match_python():
    pad = ProblemGenerator([(987654321, 123456789)])(jax.random.PRNGKey(0))
    got = np.asarray(task.residues(pad.pad[c.A]))
    assert list(got) == [987654321 % p for p in c.PRIMES]


def test_local_view_spec_and_observation():
    env = npigym.make("Multiplication-v0", max_digits=2)
    _, ts = env.reset(jax.random.PRNGKey(0))
    assert ts.observation.local.shape == (7,)
    env.observation_spec.validate(ts.observation)
    assert list(np.asarray(env.action_spec.num_values)) == [11, 4, 10, 1]


def test_bad_knobs():
    with pytest.raises(ValueError, match="min_digits"):
        Multiplication(min_digits=4, max_digits=3)
    with pytest.raises(ValueError, match="max_multiplier_digits"):
        Multiplication(max_multiplier_digits=0)
    with pytest.raises(ValueError, match="not both"):
        Multiplication(max_digits=3, generator=RandomGenerator())
    with pytest.raises(ValueError, match="positive ints"):
        ProblemGenerator([(0, 5)])
    with pytest.raises(TypeError, match="MultiplicationGenerator"):
        Multiplication(generator=object())


def test_render_shows_the_product():
    env = Multiplication(generator=ProblemGenerator([(96, 125)]))
    state, _ = env.reset(jax.random.PRNGKey(0))
    text = env.render(state)
    assert "96 x 125 = 12000" in text and "A*10^0" in text
    assert env.render(state, "rgb_array").ndim == 3
