"""The JAX renderer: bounds, determinism, and views that tell poses and models apart."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from npigym.envs.canonicalize import constants as c
from npigym.envs.canonicalize import render, shapes


def _views(size, elevations):
    """Jitted ``codes -> (models, poses, size, size)`` over every azimuth x ``elevations``."""
    az, el = np.meshgrid(np.arange(c.NUM_AZIMUTHS), np.asarray(elevations), indexing="ij")
    az, el = jnp.asarray(az.ravel()), jnp.asarray(el.ravel())
    one = jax.vmap(lambda code, a, e: render.render_view(code, a, e, size, size),
                   (None, 0, 0))
    return jax.jit(jax.vmap(lambda code: one(code, az, el)))


@pytest.fixture(scope="module")
def models():
    """Two models of each style from each split's catalogue."""
    codes = [shapes.catalogue_code(0, split, (style,), i)
             for split in (0, 1) for style in range(4) for i in range(2)]
    return jnp.stack(codes)


@functools.lru_cache(maxsize=None)
def _render(height, width):
    """A jitted single-view renderer (eager op-by-op dispatch is slow to warm up)."""
    return jax.jit(lambda code, a, e: render.render_view(code, a, e, height, width))


def _min_pairwise_difference(images):
    x = images.reshape(images.shape[0], -1)
    d = np.abs(x[:, None] - x[None]).max(-1)
    np.fill_diagonal(d, np.inf)
    return d.min()


def test_views_of_a_model_are_pairwise_distinct_16px_default_elevations(models):
    images = np.asarray(_views(16, range(0, 5))(models))  # 0..60 degrees
    assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
    for m in range(len(models)):
        assert _min_pairwise_difference(images[m]) > 0.02, shapes.describe(int(models[m]))


def test_views_of_a_model_are_pairwise_distinct_32px_all_elevations(models):
    images = np.asarray(_views(32, range(0, 7))(models[::3]))  # 0..90 degrees
    for m in range(images.shape[0]):
        assert _min_pairwise_difference(images[m]) > 0.1


def test_image_depends_on_the_model(models):
    images = np.asarray(_views(16, [1])(models))[:, :3]  # three poses
    for pose in range(3):
        for i, j in itertools.combinations(range(len(models)), 2):
            assert np.abs(images[i, pose] - images[j, pose]).max() > 0.02


def test_front_view_shows_the_headlights_and_the_back_view_does_not():
    code = shapes.catalogue_code(0, 0, (0, 1, 2, 3), 0)
    front = np.asarray(_render(32, 32)(code, 0, 1))
    back = np.asarray(_render(32, 32)(code, 12, 1))
    assert (front >= 0.99).sum() >= 4  # emissive headlights at full brightness
    assert (back >= 0.99).sum() == 0  # the brightest paint stays below 0.9
    assert (back > 0).sum() > 50 and (front > 0).sum() > 50
    # background around the centred model
    for image in (front, back):
        assert image[0].max() == 0 and image[-1].max() == 0
        assert image[:, 0].max() == 0 and image[:, -1].max() == 0


def test_renderer_is_deterministic():
    code = shapes.catalogue_code(3, 1, (0, 1, 2, 3), 7)
    f = _render(16, 16)
    a = np.asarray(f(code, 5, 2))
    np.testing.assert_array_equal(a, np.asarray(f(code, 5, 2)))
    batched = jax.jit(jax.vmap(lambda a_, e_: render.render_view(code, a_, e_, 16, 16)))
    out = np.asarray(batched(jnp.asarray([5, 6]), jnp.asarray([2, 2])))
    np.testing.assert_allclose(out[0], a, atol=1e-6)
    assert np.abs(out[1] - a).max() > 0.02


def test_non_square_images_keep_square_pixels():
    code = shapes.catalogue_code(0, 0, (0,), 0)
    wide = np.asarray(_render(16, 32)(code, 6, 0))  # side view
    square = np.asarray(_render(32, 32)(code, 6, 0))
    assert wide.shape == (16, 32)
    # the same pixel pitch: the wide image is the square one's middle rows
    np.testing.assert_allclose(wide, square[8:24], atol=1e-6)


def test_camera_basis_is_orthonormal_and_azimuth_zero_faces_the_front():
    for a, e in [(0, 0), (5, 3), (12, 6), (23, 1)]:
        p, r, u = (np.asarray(v) for v in render.camera(a, e))
        basis = np.stack([p, r, u])
        np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-6)
    p, r, _ = (np.asarray(v) for v in render.camera(0, 0))
    np.testing.assert_allclose(p, [1, 0, 0], atol=1e-6)  # in front of the car (+x)
    p, _, _ = (np.asarray(v) for v in render.camera(6, 0))
    np.testing.assert_allclose(p, [0, 1, 0], atol=1e-6)  # orbiting right: the car's left
