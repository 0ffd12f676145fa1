"""DotProduct-v0: three generations (ADD -> MUL -> DOT) solved by the expert in each posing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npigym
from npigym.envs.dot_product import DotProduct, RandomGenerator, VectorGenerator
from npigym.envs.dot_product import constants as c
from tests.envs.composition_helpers import add_skill, episodes, row_int


def dots_right(out) -> bool:
    t = out["state"].task
    for i in range(t.x.shape[0]):
        k = int(t.num_pairs[i])
        want = sum(row_int(t.x[i, j]) * row_int(t.y[i, j]) for j in range(k))
        if row_int(t.work[i, 0]) != want:
            return False
    return True


@pytest.mark.parametrize("modes", [None, "hierarchical"])
def test_expert_solves_small_dot_products(modes):
    env = DotProduct(max_length=3, max_digits=2, modes=modes, reward="dense")
    out = episodes(env, 12, seed=1)
    assert out["success"].all() and (out["invalid"] == 0).all() and dots_right(out)
    np.testing.assert_allclose(out["ret"], 2.0, atol=1e-5)


def test_expert_solves_longer_vectors_of_larger_numbers():
    env = DotProduct(min_length=4, max_length=5, min_digits=15, max_digits=20)
    out = episodes(env, 4, seed=2)
    assert out["success"].all() and dots_right(out)


def test_add_skill_under_an_agent_executed_mul():
    env = DotProduct(generator=VectorGenerator([12, 7], [34, 56]), modes={"MUL": "agent"},
                     skills={"ADD": add_skill()})
    out = episodes(env, 2)
    assert out["success"].all()
    assert row_int(out["state"].task.work[0, 0]) == 12 * 34 + 7 * 56


def test_next_pair_is_invalid_on_the_last_pair():
    env = DotProduct(generator=VectorGenerator([3], [4]))
    state, _ = env.reset(jax.random.PRNGKey(0))
    _, ts = jax.jit(env.step)(state, jnp.asarray([c.NEXT_PAIR, 0, 0, 0]))
    assert bool(ts.extras["invalid_action"])


def test_observation_and_registration():
    env = npigym.make("DotProduct-v0")
    _, ts = env.reset(jax.random.PRNGKey(0))
    assert ts.observation.local.shape == (8,)
    env.observation_spec.validate(ts.observation)
    assert env.library.names[-2:] == ("NEXT_PAIR", "DOT")
    assert "ACC:" in env.render(env.reset(jax.random.PRNGKey(0))[0])


def test_bad_knobs():
    with pytest.raises(ValueError, match="max_length"):
        DotProduct(max_length=10)
    with pytest.raises(ValueError, match="min_digits"):
        RandomGenerator(min_digits=3, max_digits=2)
    with pytest.raises(ValueError, match="same, non-zero length"):
        VectorGenerator([1, 2], [3])


def test_flat_posing_calls_every_primitive_from_dot():
    env = DotProduct(modes="flat", max_length=2, max_digits=1)
    state, ts = env.reset(jax.random.PRNGKey(0))
    mask = np.asarray(ts.observation.action_mask)
    assert {env.library.names[i] for i in np.flatnonzero(mask)} == {
        "RETURN", "MOVE_PTR", "WRITE", "COMMIT", "NEXT", "NEXT_PAIR"}
    with pytest.raises(ValueError, match="inlines"):
        env.expert_action(state)
