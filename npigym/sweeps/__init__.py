"""Sweeps: configs x seeds from one spec, as vmapped programs on one machine or Ray Tune trials.

``npigym sweep SPEC.yaml`` (see :mod:`npigym.sweeps.spec` for the spec,
:mod:`npigym.sweeps.runner` for the local backend, :mod:`npigym.sweeps.ray_backend` for Ray and
:mod:`npigym.sweeps.report` for the report).

```python
from npigym.sweeps import load_spec, run_local, report
spec = load_spec("sweep.yaml", ["seeds=3"])
run_local("sweeps/demo", spec, spec.trials())
report("sweeps/demo")
```
"""

from npigym.sweeps.report import report
from npigym.sweeps.runner import group_trials, run_local
from npigym.sweeps.spec import SweepError, SweepSpec, Trial, from_mapping, load_spec

__all__ = ["SweepError", "SweepSpec", "Trial", "from_mapping", "group_trials", "load_spec",
           "report", "run_local"]
