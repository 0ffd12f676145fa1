"""Sorting generators: the random distribution, fixed arrays, dtypes and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from npigym.envs.sorting import ArrayGenerator, RandomGenerator
from npigym.envs.sorting import constants as c
from npigym.envs.sorting.generator import fingerprint


def draw(generator, count, seed=0):
    return jax.jit(jax.vmap(generator))(jax.random.split(jax.random.PRNGKey(seed), count))


def test_random_generator__lengths_values_and_duplicates():
    generator = RandomGenerator(min_length=3, max_length=12, max_value=9)
    pads = draw(generator, 4000)
    lengths = np.asarray(pads.length)
    cells = np.asarray(pads.cells)
    assert cells.shape == (4000, 12) and cells.dtype == np.int8
    assert set(lengths.tolist()) == set(range(3, 13))  # every length, none outside
    assert np.bincount(lengths)[3:].min() > 4000 / 10 * 0.7
    inside = np.arange(12)[None, :] < lengths[:, None]
    assert np.all(cells[~inside] == c.BLANK)
    values = cells[inside] - 1
    counts = np.bincount(values, minlength=10)
    assert len(counts) == 10 and counts.min() > counts.mean() * 0.85  # uniform digits
    duplicated = [len(set(row[:n])) < n for row, n in zip(cells, lengths)]
    assert np.mean(duplicated) > 0.5
    assert np.all(np.asarray(pads.pointers) == 0)
    assert np.all(np.asarray(pads.inversions_removed) == 0)
    np.testing.assert_array_equal(np.asarray(pads.fingerprint),
                                  np.asarray(jax.vmap(fingerprint)(pads.cells)))


def test_random_generator__same_key_same_array_and_keys_differ():
    generator = RandomGenerator(max_length=20)
    pads = draw(generator, 64, seed=1)
    again = draw(generator, 64, seed=1)
    jax.tree.map(np.testing.assert_array_equal, pads, again)
    assert len({row.tobytes() for row in np.asarray(pads.cells)}) == 64


@pytest.mark.parametrize("max_value, dtype", [(126, np.int8), (127, np.int16),
                                              (65535, np.int32)])
def test_random_generator__large_alphabets_widen_the_cells(max_value, dtype):
    generator = RandomGenerator(min_length=50, max_length=50, max_value=max_value)
    pads = draw(generator, 64, seed=max_value)
    values = np.asarray(pads.cells).astype(np.int64) - 1
    assert pads.cells.dtype == dtype and generator.dtype == dtype
    assert values.min() >= 0 and values.max() <= max_value
    assert values.max() > max_value * 0.9  # the top of the range is reached


def test_array_generator__draws_the_given_arrays():
    arrays = [[3, 1, 2, 0], [7], np.array([5, 5, 0])]
    generator = ArrayGenerator(arrays)
    assert generator.max_length == 4 and generator.max_value == 9
    pads = draw(generator, 60)
    seen = {tuple((cells[:n] - 1).tolist())
            for cells, n in zip(np.asarray(pads.cells), np.asarray(pads.length))}
    assert seen == {(3, 1, 2, 0), (7,), (5, 5, 0)}
    wide = ArrayGenerator([[300, 2]], max_length=6)
    assert wide.max_value == 300 and wide.dtype == jnp.int16 and wide.max_length == 6
    assert int(jax.jit(wide)(jax.random.PRNGKey(0)).cells[0]) == 301


@pytest.mark.parametrize("kwargs, error, match", [
    ({"max_length": 0}, ValueError, "max_length"),
    ({"max_length": c.MAX_LENGTH_LIMIT + 1}, ValueError, "max_length"),
    ({"min_length": 0}, ValueError, "min_length"),
    ({"min_length": 8, "max_length": 5}, ValueError, "must not exceed"),
    ({"max_value": 0}, ValueError, "max_value"),
    ({"max_value": 65536}, ValueError, "max_value"),
    ({"max_length": 2.5}, TypeError, "max_length must be an int"),
    ({"min_length": True}, TypeError, "min_length must be an int"),
    ({"max_value": "9"}, TypeError, "max_value must be an int"),
])
def test_random_generator__rejects_bad_knobs(kwargs, error, match):
    with pytest.raises(error, match=match):
        RandomGenerator(**kwargs)


@pytest.mark.parametrize("arrays, kwargs, error, match", [
    ([], {}, ValueError, "at least one"),
    ([[]], {}, ValueError, "empty"),
    ([[1, -2]], {}, ValueError, "non-negative"),
    ([[1.5]], {}, ValueError, "non-negative ints"),
    ([[1, 2, 3]], {"max_length": 2}, ValueError, "max_length=2"),
    ([[12]], {"max_value": 9}, ValueError, "max_value=9"),
    ("321", {}, TypeError, "sequence of arrays"),
])
def test_array_generator__rejects_bad_arrays(arrays, kwargs, error, match):
    with pytest.raises(error, match=match):
        ArrayGenerator(arrays, **kwargs)
