"""cond_any: a batch-level branch that stays one branch under vmap."""

import jax
import jax.numpy as jnp
import pytest

from npigym.batching import cond_any


def flagged(x):
    """The right answer, and a flag saying the expensive branch ran."""
    return x * 2.0, jnp.ones((), jnp.int32)


def shortcut(x):
    return x * 2.0, jnp.zeros((), jnp.int32)


def branch(pred, x):
    return cond_any(pred, flagged, shortcut, x)


def test_cond_any__is_lax_cond_without_vmap():
    x = jnp.arange(3.0)
    for pred in (True, False):
        got = jax.jit(branch)(pred, x)
        want = jax.lax.cond(pred, flagged, shortcut, x)
        assert jnp.array_equal(got[0], want[0]) and int(got[1]) == int(want[1])


@pytest.mark.parametrize("preds, ran", [([False, False, False], 0), ([False, True, False], 1)])
def test_cond_any__one_branch_for_the_whole_batch(preds, ran):
    """The expensive branch runs for every element if any needs it, else the cheap one for
    all; the values are the per-element cond's either way."""
    x = jnp.arange(6.0).reshape(3, 2)
    values, flags = jax.jit(jax.vmap(branch))(jnp.array(preds), x)
    assert jnp.array_equal(values, x * 2.0)
    assert flags.tolist() == [ran] * 3
    # A branch, not the select that a batched lax.cond becomes.
    jaxpr = str(jax.make_jaxpr(jax.vmap(branch))(jnp.array(preds), x))
    assert "cond[" in jaxpr and "select_n" not in jaxpr


def test_cond_any__nested_vmaps_and_unbatched_operands():
    """A vmap inside a vmap (seeds inside a sweep) reduces both axes; an operand that only
    the outer vmap batches is broadcast."""
    preds = jnp.array([[False, False], [False, True]])
    x = jnp.arange(2.0)  # batched by the outer vmap only
    values, flags = jax.jit(jax.vmap(jax.vmap(branch, (0, None)), (0, 0)))(preds, x)
    assert jnp.array_equal(values, jnp.broadcast_to((x * 2.0)[:, None], (2, 2)))
    assert flags.tolist() == [[1, 1], [1, 1]]
    values, flags = jax.jit(jax.vmap(jax.vmap(branch, (0, None)), (0, 0)))(
        jnp.zeros((2, 2), bool), x)
    assert flags.tolist() == [[0, 0], [0, 0]]


def test_cond_any__inside_a_scan_under_vmap():
    """Each scan step decides for itself (as in a rollout's steps)."""
    def run(preds):
        return jax.lax.scan(lambda c, p: (c, branch(p, jnp.ones(2))[1]), 0, preds)[1]

    flags = jax.jit(jax.vmap(run))(jnp.array([[True, False], [False, False]]))
    assert flags.tolist() == [[1, 0], [1, 0]]
