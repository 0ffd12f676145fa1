"""Addition generators: random problems (with the ``nines`` difficulty knob) and fixed ones."""

import jax
import numpy as np
import pytest

import npigym
from npigym.envs.addition import ProblemGenerator, RandomGenerator
from npigym.envs.addition import constants as c
from npigym.envs.addition.viewer import row_number


def test_problem_generator__writes_the_given_problems():
    problems = [(96, 125), (0, 7), (99999, 1)]
    generator = ProblemGenerator(problems)
    assert generator.max_digits == 5 and generator.width == 9
    seen = set()
    for k in range(40):
        pad = generator(jax.random.PRNGKey(k))
        rows = np.asarray(pad.pad)
        seen.add((int(row_number(rows[c.IN1]) or 0), int(row_number(rows[c.IN2]) or 0)))
    assert seen == set(problems)


def test_problem_generator__zero_is_a_written_digit():
    pad = ProblemGenerator([(0, 0)])(jax.random.PRNGKey(0))
    assert int(pad.pad[c.IN1, -2]) == 1 and int(pad.num_digits) == 1


@pytest.mark.parametrize("problems, kwargs, match", [
    ([], {}, "at least one"),
    ([(1, -2)], {}, "non-negative"),
    ([(1, 2, 3)], {}, "pairs"),
    ([(1.5, 2)], {}, "non-negative ints"),
    ([(12345, 1)], {"max_digits": 3}, "5 digits"),
])
def test_problem_generator__rejects_bad_problems(problems, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProblemGenerator(problems, **kwargs)


def _operand_digits(generator, n=4000):
    """Every operand digit of ``n`` instances, and whether it is a leading digit."""
    rows = np.asarray(jax.vmap(generator)(jax.random.split(jax.random.PRNGKey(0), n)).pad)
    digits, leading = [], []
    for row in rows[:, [c.IN1, c.IN2]].reshape(-1, rows.shape[-1]):
        written = np.nonzero((row >= 1) & (row <= 10))[0]
        digits += list(row[written] - 1)
        leading += [len(written) > 1] + [False] * (len(written) - 1)
    return np.array(digits), np.array(leading)


@pytest.mark.parametrize("nines", [None, 0.3, 1.0])
def test_random_generator__nines_sets_the_rate_of_nines(nines):
    digits, leading = _operand_digits(RandomGenerator(1, 5, nines))
    rate = np.mean(digits == 9)
    assert abs(rate - (0.1 if nines is None else nines)) < 0.015
    assert not np.any(digits[leading] == 0)  # still no leading zeros
    others = digits[~leading & (digits != 9)]
    if nines != 1.0:  # the other digits stay uniform over 0-8
        counts = np.bincount(others, minlength=9)[:9] / len(others)
        assert np.all(np.abs(counts - 1 / 9) < 0.02)


def test_random_generator__nines_is_an_env_knob_and_validated():
    env = npigym.make("Addition-v0", max_digits=5, nines=0.3)
    assert "nines=0.3" in repr(env.generator)
    with pytest.raises(ValueError, match="nines must be a probability"):
        RandomGenerator(1, 5, nines=1.5)
    with pytest.raises(ValueError, match="not both"):
        npigym.make("Addition-v0", generator=RandomGenerator(1, 5), nines=0.3)
