"""benchmarks/meta_variance.py and meta_snake.py: the arms they tell apart, the variance
ratio's interval, and paired meta-gradient samples on a tiny Snake configuration."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import meta_snake
import meta_variance

from npigym.experiments.config import load_config


def test_arms__every_snake_sweep_maps_to_its_own_arm() -> None:
    def arm(*overrides: str) -> str:
        return meta_snake.estimator(load_config("snake-meta", overrides))

    assert arm() == "debiased"
    assert arm("meta.estimator=biased") == "biased"
    assert arm("meta.estimator=none") == "none"
    assert arm("meta.meta_steps=3", "meta.mixing=none", "meta.remat=true") == "kstep3"
    assert arm("meta.meta_steps=3", "meta.mixing=uniform", "meta.remat=true") == "mixed3"
    assert meta_variance.arm_name(load_config("snake-meta", ["meta.meta_steps=3"])) \
        == "K-step, K = 3"
    mixed = load_config("snake-meta", ["meta.meta_steps=3", "meta.mixing=uniform"])
    assert meta_variance.arm_name(mixed) == "mixed, K = 3"
    assert meta_variance.arm_name(load_config("snake-meta")) == "debiased, K = 1"


def test_ratio_interval__covers_the_true_ratio_and_narrows_with_samples() -> None:
    rng = np.random.RandomState(0)
    a, b = rng.normal(0, 2.0, 400), rng.normal(0, 1.0, 400)  # true variance ratio 4
    r, lo, hi = meta_variance.ratio_interval(a, b)
    assert lo < 4.0 < hi and lo < r < hi
    r_small, lo_small, hi_small = meta_variance.ratio_interval(a[:10], b[:10])
    assert hi_small - lo_small > hi - lo


def test_run_dirs__finds_trials_of_a_sweep_and_skips_runs_without_checkpoints(
        tmp_path: Path) -> None:
    for name, checkpointed in (("a-s0", True), ("a-s1", False)):
        run = tmp_path / "sweep" / "trials" / name
        run.mkdir(parents=True)
        if checkpointed:
            (run / "checkpoints").mkdir()
    lone = tmp_path / "run"
    (lone / "checkpoints").mkdir(parents=True)
    found = meta_variance.run_dirs([str(tmp_path / "sweep"), str(lone),
                                    str(tmp_path / "missing")])
    assert found == [str(tmp_path / "sweep" / "trials" / "a-s0"), str(lone)]


@pytest.mark.slow
def test_samples__paired_finite_meta_gradients_of_both_estimators() -> None:
    config = load_config("snake-meta", [
        "a2c.num_envs=4", "a2c.rollout_length=2", "a2c.updates_per_call=1",
        "network.encoder_layers=[8]", "network.head_layers=[8]", "network.critic_layers=[8]"])
    k2 = {"K-step": meta_variance.Sampler(meta_variance.variant(config, 2, "none")),
          "mixed": meta_variance.Sampler(meta_variance.variant(config, 2, "uniform"))}
    state = k2["K-step"].initial()
    g = meta_variance.samples(k2, state, n=3, gap=2, seed=0)
    assert set(g) == {"K-step", "mixed"}
    for name in g:
        assert g[name].shape == (3,) and np.all(np.isfinite(g[name]))
        assert len(set(g[name].tolist())) == 3  # fresh batches: no two samples alike
    assert not np.allclose(g["K-step"], g["mixed"])  # different estimators on the same batches
