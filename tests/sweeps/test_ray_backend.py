"""The Ray Tune backend on a real local Ray instance (2 CPUs): the same trials, the same
results as the local backend's, resumable the same way."""

import os

import numpy as np
import pytest

from npigym.experiments import run_dir as rd
from npigym.experiments.logger import read_metrics
from npigym.sweeps.runner import DONE, run_local
from npigym.sweeps.spec import from_mapping

ray = pytest.importorskip("ray", reason="the sweep extra (pip install 'npigym[sweep]')")

RAW = {"name": "tiny-ray", "base": "addition-macro",
       "overrides": ["max_digits=3", "num_envs=8", "rollout_length=8", "updates_per_call=2"],
       "axes": {"learning_rate": [3e-3]}, "seeds": [0, 1],
       "budget": {"total_env_steps": 8 * 8 * 2 * 3}, "checkpoint_every": 1,
       "metric": {"name": "return", "last": 2},
       "ray": {"resources_per_trial": {"cpu": 1}, "max_concurrent_trials": 2}}


@pytest.mark.slow
def test_ray_trials_match_the_local_backend_and_resume(tmp_path):
    from npigym.sweeps.ray_backend import run_ray

    spec = from_mapping(RAW)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        index = run_ray(str(tmp_path / "ray"), spec, spec.trials(), progress=False)
    finally:
        ray.shutdown()
    local = run_local(str(tmp_path / "local"), spec, spec.trials(), progress=False)
    for k, r in index["trials"].items():
        assert r["status"] == DONE and r["calls"] == 3, r
        run = tmp_path / "ray" / r["run_dir"]
        assert rd.is_run_dir(str(run)) and os.listdir(run / rd.CHECKPOINTS)
        assert [m["call"] for m in read_metrics(str(run))] == [1, 2, 3]
        np.testing.assert_allclose(r["value"], local["trials"][k]["value"], rtol=1e-4)
    # Finished trials are not rerun (no Ray instance is even needed).
    again = run_ray(str(tmp_path / "ray"), spec, spec.trials(), progress=False)
    assert again["trials"] == index["trials"]
    assert not ray.is_initialized()
