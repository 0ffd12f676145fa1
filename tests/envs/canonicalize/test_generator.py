"""Canonicalization generators: pose and model distributions, the support, validation."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from npigym.envs.canonicalize import Problem, ProblemGenerator, RandomGenerator, shapes, task


def draw(generator, n=4096, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    scenes = jax.jit(jax.vmap(generator))(keys)
    return jax.tree.map(np.asarray, scenes)


def poses(scenes):
    return np.stack([scenes.azimuth, scenes.elevation, scenes.target_azimuth,
                     scenes.target_elevation], -1)


def test_default_is_the_papers_training_distribution():
    gen = RandomGenerator()
    s = draw(gen)
    assert set(s.azimuth.tolist()) == {19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5}  # -75..75
    assert set(s.elevation.tolist()) == {0, 1, 2, 3, 4}  # 0..60
    assert (s.target_azimuth == 0).all() and (s.target_elevation == 1).all()
    np.testing.assert_allclose(np.bincount(s.elevation) / len(s.elevation), 0.2, atol=0.03)
    assert (s.moves == 0).all() and s.shape.dtype == np.uint32
    # models: the 64 of the seen catalogue, all of them
    catalogue = {int(gen.model_code(i)) for i in range(64)}
    assert set(s.shape.tolist()) == catalogue
    assert (np.asarray(shapes.split_of(s.shape)) == 0).all()
    # every draw is in the support, which is every start pose
    support = {tuple(row) for row in gen.support().tolist()}
    assert {tuple(row) for row in poses(s).tolist()} == support and len(support) == 55


def test_deterministic_per_key_and_varied_across_keys():
    gen = RandomGenerator(target=None, num_models=None)
    a, b = draw(gen, 256, seed=1), draw(gen, 256, seed=1)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert len(set(a.shape.tolist())) == 256  # a fresh model per episode
    assert len({tuple(r) for r in poses(a).tolist()}) > 100


def test_random_target_and_rotation_bounds():
    gen = RandomGenerator(azimuth_range=(-180, 165), elevation_range=(15, 90), target=None,
                          min_rotations=3, max_rotations=5, split="unseen")
    s = draw(gen)
    d_az, d_el = task.host_distances(s.azimuth, s.elevation, s.target_azimuth,
                                     s.target_elevation)
    assert set((d_az + d_el).tolist()) == {3, 4, 5}
    assert set(s.target_azimuth.tolist()) == set(range(24))
    assert set(s.target_elevation.tolist()) == set(range(1, 7))
    assert ((s.elevation >= 1) & (s.elevation <= 6)).all()
    assert (np.asarray(shapes.split_of(s.shape)) == 1).all()
    support = {tuple(row) for row in gen.support().tolist()}
    assert {tuple(row) for row in poses(s).tolist()} <= support


def test_fixed_target_with_rotation_bounds_draws_from_a_static_list():
    gen = RandomGenerator(max_rotations=2, family=["sedan", "pickup"], num_models=5,
                          shape_seed=9)
    s = draw(gen, 2048)
    d_az, d_el = task.host_distances(s.azimuth, s.elevation, 0, 1)
    assert set((d_az + d_el).tolist()) == {0, 1, 2}
    assert len(gen.support()) == 1 + 4 + 8 - 1  # a diamond, less elevation -15
    assert set(((s.shape >> shapes.STYLE_SHIFT) & 3).tolist()) == {0, 2}
    assert len(set(s.shape.tolist())) == 5


def test_problem_generator():
    problems = [Problem(-45, 45), (30, 0, 90, 60, 3), (0, 15)]
    gen = ProblemGenerator(problems, split="unseen", family="suv")
    s = draw(gen, 512)
    rows = {tuple(r) for r in poses(s).tolist()}
    assert rows == {(21, 3, 0, 1), (2, 0, 6, 4), (0, 1, 0, 1)}
    assert set(s.shape.tolist()) == {int(gen.model_code(0)), int(gen.model_code(3))}
    assert (np.asarray(shapes.split_of(s.shape)) == 1).all()
    assert "ProblemGenerator([(-45, 45, 0, 15, 0)" in repr(gen)


@pytest.mark.parametrize("problems,match", [
    ([], "non-empty"),
    ("abc", "non-empty"),
    ([(0,)], "a problem is"),
    ([(0, 15, 30)], "a problem is"),
    ([(0, 75)], "outside elevation_range"),
    ([(0, 15, 0, 90)], "outside elevation_range"),
    ([(7, 15)], "multiple of 15"),
    ([(0, 15, 0, 15, -1)], "model"),
    ([(0, 15, 0, 15, 1.5)], "model"),
])
def test_problem_generator_rejects_bad_problems(problems, match):
    with pytest.raises(ValueError, match=match):
        ProblemGenerator(problems)


def test_reprs_name_the_knobs():
    text = repr(RandomGenerator(target=None, max_rotations=4))
    assert "target=None" in text and "max_rotations=4" in text and "split='seen'" in text
