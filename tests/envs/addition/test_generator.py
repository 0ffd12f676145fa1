"""ProblemGenerator: fixed problems, Jumanji's generator pattern for tests and demos."""

import jax
import numpy as np
import pytest

from npigym.envs.addition import ProblemGenerator
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
