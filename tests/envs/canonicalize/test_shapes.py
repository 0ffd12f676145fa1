"""The car family: shape codes, styles, the seen / unseen split, the boxes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from npigym.envs.canonicalize import render, shapes


@pytest.fixture(scope="module")
def make_codes():
    """Jitted ``(words, split) -> codes`` for every style."""
    return jax.jit(jax.vmap(lambda w, s: shapes.make_code(w, s, (0, 1, 2, 3)), (0, None)),
                   static_argnums=1)


def test_make_code_draws_only_its_split_and_uniformly(make_codes):
    words = np.asarray(jax.random.bits(jax.random.PRNGKey(0), (1 << 15,), jnp.uint32))
    for split in (0, 1):
        codes = np.asarray(make_codes(words, split))
        assert (np.asarray(shapes.split_of(codes)) == split).all()
        assert (codes >> 30 == 0).all()
        bits = (codes[:, None] >> np.arange(shapes.PARAMETER_BITS)) & 1
        np.testing.assert_allclose(bits.mean(0), 0.5, atol=0.02)
        styles = np.bincount((codes >> shapes.STYLE_SHIFT) & 3, minlength=4) / len(codes)
        np.testing.assert_allclose(styles, 0.25, atol=0.02)


def test_seen_and_unseen_never_share_parameters(make_codes):
    words = np.asarray(jax.random.bits(jax.random.PRNGKey(1), (1 << 14,), jnp.uint32))
    seen = set((np.asarray(make_codes(words, 0)) & shapes.PARAMETER_MASK).tolist())
    unseen = set((np.asarray(make_codes(words, 1)) & shapes.PARAMETER_MASK).tolist())
    assert len(seen) > 16000 and len(unseen) > 16000 and not seen & unseen
    # The catalogues too, and they are different streams (not the seen models with bit 0
    # flipped).
    index = jnp.arange(4096)
    catalogue = jax.jit(jax.vmap(shapes.catalogue_code, (None, None, None, 0)),
                        static_argnums=(0, 1, 2))
    seen_models = np.asarray(catalogue(0, 0, (0, 1, 2, 3), index))
    unseen_models = np.asarray(catalogue(0, 1, (0, 1, 2, 3), index))
    assert not set(seen_models.tolist()) & set(unseen_models.tolist())
    assert not (set((seen_models & shapes.PARAMETER_MASK).tolist())
                & set((unseen_models & shapes.PARAMETER_MASK).tolist()))
    assert ((seen_models ^ unseen_models) & shapes.PARAMETER_MASK > 1).mean() > 0.99
    other_seed = np.asarray(catalogue(1, 0, (0, 1, 2, 3), index))
    assert (other_seed != seen_models).mean() > 0.99
    assert len(set(seen_models.tolist())) == 4096


def test_styles_of_the_family_knob():
    assert shapes.styles_of("cars") == (0, 1, 2, 3)
    assert shapes.styles_of("pickup") == (2,)
    assert shapes.styles_of(["sports", "sedan"]) == (0, 3)
    for bad in ("trucks", [], ["sedan", "sedan"], ("sedan", "cars")):
        with pytest.raises(ValueError, match="family"):
            shapes.styles_of(bad)
    with pytest.raises(TypeError, match="family"):
        shapes.styles_of(3)
    codes = [int(shapes.make_code(np.uint32(w), 0, (3,))) for w in range(0, 1 << 32, 1 << 28)]
    assert {c >> shapes.STYLE_SHIFT for c in codes} == {3}


def _extreme_codes():
    """Every style with every parameter at its lowest and at its highest level."""
    return [np.uint32(level | (style << shapes.STYLE_SHIFT))
            for style in range(4) for level in (0, shapes.PARAMETER_MASK)]


def test_parameters_and_boxes():
    for code in _extreme_codes():
        values = np.asarray(shapes.parameters(code))
        low = np.asarray([p[1] for p in shapes.PARAMETERS])
        high = np.asarray([p[2] for p in shapes.PARAMETERS])
        assert ((values >= low - 1e-6) & (values <= high + 1e-6)).all()
        boxes = shapes.car_boxes(code)
        lo, hi = np.asarray(boxes.lo), np.asarray(boxes.hi)
        assert (lo < hi).all()
        style = int(code) >> shapes.STYLE_SHIFT
        assert bool(boxes.enabled[-1]) == (shapes.STYLES[style] == "sports")
        assert np.asarray(boxes.enabled[:-1]).all()
        body, cabin = 0, 1
        # front / back asymmetry: the cabin is off-centre, headlights at the front are lit
        assert abs((lo[cabin, 0] + hi[cabin, 0]) / 2) > 0.1
        assert hi[6, 0] > hi[body, 0] and lo[8, 0] < lo[body, 0]
        assert boxes.albedo[6] == 1.0 and boxes.albedo[8] < 0.2


def test_every_model_fits_in_every_view():
    """Every corner of every box projects inside the view square (no clipped views)."""
    codes = _extreme_codes() + [shapes.make_code(np.uint32(w), w & 1, (0, 1, 2, 3))
                                for w in range(1, 1 << 32, 1 << 26)]
    azimuths, elevations = np.meshgrid(np.arange(24), np.arange(7), indexing="ij")
    cams = [tuple(np.asarray(v) for v in render.camera(a, e))
            for a, e in zip(azimuths.ravel(), elevations.ravel())]
    extent = 0.0
    for code in codes:
        boxes = shapes.car_boxes(code)
        lo, hi = np.asarray(boxes.lo), np.asarray(boxes.hi)
        corners = np.stack([np.where([(i >> k) & 1 for k in range(3)], hi, lo)
                            for i in range(8)], 1).reshape(-1, 3)
        for _, right, up in cams:
            extent = max(extent, np.abs(corners @ right).max(), np.abs(corners @ up).max())
    assert extent < shapes.VIEW_HALF_EXTENT


def test_describe():
    code = int(shapes.catalogue_code(0, 1, (1,), 5))
    text = shapes.describe(code)
    assert text.startswith("suv L=") and "(unseen, code 0x" in text
