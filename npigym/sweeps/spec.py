"""Sweep specs: a base config, axes over its keys, seeds, a budget and the metric to rank by.

A spec is a YAML file (or a mapping)::

    name: addition-lr                 # default: the file's stem; the sweep dir's default name
    base: addition-macro              # a preset or a config file (default: the defaults)
    overrides: [max_digits=5]         # key=value on top of the base, as `npigym train` takes
    axes:
      learning_rate: [3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2]           # a grid
      entropy_cost: {log_uniform: [1.0e-3, 1.0e-1]}             # sampled (with `samples`)
    samples: 4                        # draws of the sampled axes (default 1; crossed with the grid)
    sampler: sobol                    # or random (default sobol: quasi-random, scrambled)
    seeds: 5                          # or a list: [0, 1, 2]
    budget: {total_env_steps: 200000} # per trial; time_limit_s too (locally: per group)
    metric: success                   # a logged metric; or {name: success, mode: max, last: 5}
    checkpoint_every: 10              # host calls between a group's checkpoints
    trials_per_program: 1             # at most this many trials per vmapped program (default:
                                      # all that share one); 1 runs them one after another
    ray: {resources_per_trial: {cpu: 1}, scheduler: asha, max_concurrent_trials: 2}
                                      # (--backend ray; address: join a cluster)

Axes take a list (grid values) or one of ``{uniform: [low, high]}``, ``{log_uniform: [low,
high]}``, ``{int_uniform: [low, high]}`` (sampled jointly, ``samples`` times, by a scrambled Sobol
sequence or uniformly at random). The trials are every grid point x every sample x every seed;
each is an ordinary :class:`~npigym.experiments.config.TrainConfig` with ``num_seeds=1``.

Everything is checked before anything trains: unknown spec keys, unknown or duplicate axes,
empty axes, bad ranges, values the config rejects (each trial's config is built), and the metric.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import yaml

from npigym.experiments.config import (
    ConfigError,
    TrainConfig,
    from_dict,
    load_config,
    parse_value,
    to_dict,
)

SPEC_KEYS = ("name", "base", "overrides", "axes", "samples", "sampler", "seeds", "budget",
             "metric", "checkpoint_every", "trials_per_program", "ray")
BUDGET_KEYS = ("total_env_steps", "time_limit_s")
SAMPLERS = ("sobol", "random")
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform")
RAY_KEYS = ("address", "resources_per_trial", "scheduler", "max_concurrent_trials",
            "grace_period")
# Metrics every run logs (npigym.experiments.train.call_record); a trainer's own metrics
# (loss, entropy, hp_discount, ...) are checked against its compiled outputs.
EPISODE_METRICS = ("return", "success", "length")


class SweepError(ConfigError):
    """A sweep spec that makes no sense, or a sweep directory that does not match it."""


@dataclasses.dataclass(frozen=True)
class Metric:
    """What ranks the trials: the mean of ``name`` over the last ``last`` logged calls."""

    name: str = "success"
    mode: str = "max"
    last: int = 5


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept config key: grid ``values``, or a ``distribution`` over ``[low, high]``."""

    key: str  # the config key as written (short or full)
    path: str  # the resolved dotted key (a2c.learning_rate, env_kwargs.max_digits, ...)
    values: Optional[Tuple[Any, ...]] = None
    distribution: Optional[str] = None
    low: float = 0.0
    high: float = 0.0

    @property
    def sampled(self) -> bool:
        """Whether the axis is drawn from a distribution (else it is a grid)."""
        return self.distribution is not None


@dataclasses.dataclass(frozen=True)
class Trial:
    """One training run of the sweep: a config (``num_seeds=1``) and where it is written.

    ``config_id`` names the hyperparameter setting (shared by its seeds); ``trial_id`` the run.
    """

    trial_id: str
    config_id: str
    seed: int
    values: Tuple[Tuple[str, Any], ...]  # (axis key, value) in axis order
    config: TrainConfig


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated sweep (see the module docstring)."""

    name: str
    base: Optional[str]
    overrides: Tuple[str, ...]
    axes: Tuple[Axis, ...]
    samples: int
    sampler: str
    seeds: Tuple[int, ...]
    budget: Tuple[Tuple[str, Any], ...]
    metric: Metric
    checkpoint_every: int
    ray: Tuple[Tuple[str, Any], ...]
    base_config: TrainConfig
    trials_per_program: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        """The spec as written back to ``SWEEP_DIR/spec.yaml`` (resolved, loadable again)."""
        axes: Dict[str, Any] = {}
        for a in self.axes:
            axes[a.key] = list(a.values) if not a.sampled else {a.distribution: [a.low, a.high]}
        return {"name": self.name, "base": self.base, "overrides": list(self.overrides),
                "axes": axes, "samples": self.samples, "sampler": self.sampler,
                "seeds": list(self.seeds), "budget": dict(self.budget),
                "metric": dataclasses.asdict(self.metric),
                "checkpoint_every": self.checkpoint_every, "ray": _plain(dict(self.ray)),
                **({"trials_per_program": self.trials_per_program}
                   if self.trials_per_program is not None else {})}

    def trials(self) -> List[Trial]:
        """Every grid point x sample x seed, in a fixed order (configs first, then seeds)."""
        grid = [a for a in self.axes if not a.sampled]
        sampled = [a for a in self.axes if a.sampled]
        points = _grid(grid)
        draws = _draws(sampled, self.samples, self.sampler, self.seeds[0]) if sampled else [{}]
        trials = []
        for point in points:
            for draw in draws:
                values = tuple((a.key, {**point, **draw}[a.key]) for a in self.axes)
                config_id = _config_id(values)
                for seed in self.seeds:
                    config = trial_config(self, values, seed)
                    trials.append(Trial(f"{config_id}-s{seed}", config_id, seed, values, config))
        return trials


def _plain(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _freeze(x: Any) -> Any:
    if isinstance(x, Mapping):
        return tuple((k, _freeze(v)) for k, v in x.items())
    if isinstance(x, list):
        return tuple(_freeze(v) for v in x)
    return x


def _config_id(values: Sequence[Tuple[str, Any]]) -> str:
    """A short, readable and stable name for a setting: ``lr3e-04_ent0.01`` style when short,
    else a hash."""
    if not values:
        return "base"
    parts = []
    for key, value in values:
        short = key.split(".")[-1]
        if isinstance(value, float):
            text = f"{value:.3g}"
        elif isinstance(value, tuple):  # a layer list: (64, 64) -> 64x64
            text = "x".join(str(v) for v in value) or "none"
        else:
            text = str(value)
        parts.append(f"{short}={text}")
    name = ",".join(parts).replace(" ", "")
    safe = "".join(c if c.isalnum() or c in "=.,-_+" else "_" for c in name)
    if len(safe) <= 80:
        return safe
    return "cfg-" + hashlib.sha1(json.dumps(values, default=str).encode()).hexdigest()[:10]


def _grid(axes: Sequence[Axis]) -> List[Dict[str, Any]]:
    points: List[Dict[str, Any]] = [{}]
    for a in axes:
        points = [{**p, a.key: v} for p in points for v in a.values]
    return points


def _draws(axes: Sequence[Axis], n: int, sampler: str, seed: int) -> List[Dict[str, Any]]:
    """``n`` joint draws of the sampled axes (Sobol points are scrambled with the first seed, so
    a spec always gives the same trials)."""
    if sampler == "sobol":
        from scipy.stats import qmc

        # Sobol is balanced at powers of two; other n still cover the cube evenly.
        unit = qmc.Sobol(d=len(axes), scramble=True, seed=seed).random(n)
    else:
        unit = np.random.default_rng(seed).random((n, len(axes)))
    draws = []
    for row in unit:
        draw = {}
        for a, u in zip(axes, row):
            if a.distribution == "uniform":
                draw[a.key] = float(a.low + u * (a.high - a.low))
            elif a.distribution == "log_uniform":
                draw[a.key] = float(math.exp(math.log(a.low)
                                             + u * (math.log(a.high) - math.log(a.low))))
            else:  # int_uniform, both ends included
                draw[a.key] = int(min(a.high, math.floor(a.low + u * (a.high - a.low + 1))))
        draws.append(draw)
    return draws


def trial_config(spec: SweepSpec, values: Sequence[Tuple[str, Any]], seed: int) -> TrainConfig:
    """The base config with the trial's axis values, seed, one seed per trial and the budget."""
    overrides: Dict[str, Any] = {path: v for (key, v), path
                                 in zip(values, (a.path for a in spec.axes))}
    overrides.update({"seed": seed, "num_seeds": 1, "checkpoint_every": spec.checkpoint_every,
                      **dict(spec.budget)})
    return _apply(spec.base_config, overrides)


def _apply(base: TrainConfig, flat: Mapping[str, Any]) -> TrainConfig:
    """``base`` with dotted keys set (``env_kwargs.max_digits`` reaches into the mapping)."""
    tree = to_dict(base)
    for path, value in flat.items():
        node = tree
        parts = path.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return from_dict(tree)


def _resolve_path(key: str, base: TrainConfig) -> str:
    """The dotted config path of a user's key, as ``npigym train``'s ``key=value`` resolves it
    (short names, sections, env keywords)."""
    from npigym.experiments.config import _resolve_key, env_keywords

    try:
        keywords = env_keywords(base.env)
    except Exception:
        keywords = []
    return ".".join(_resolve_key(key, keywords))


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SweepError(message)


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _axis(key: Any, raw: Any, base: TrainConfig) -> Axis:
    _check(isinstance(key, str) and key, f"axis names are config keys; got {key!r}")
    try:
        path = _resolve_path(key, base)
    except ConfigError as e:
        raise SweepError(f"axis {key!r}: {e}") from None
    _check(path not in ("seed", "num_seeds"),
           f"axis {key!r}: seeds are the spec's `seeds`, not an axis")
    _check(path not in ("total_env_steps", "time_limit_s"),
           f"axis {key!r}: the budget is the spec's `budget`, the same for every trial")
    if isinstance(raw, (list, tuple)):
        _check(len(raw) > 0, f"axis {key!r} is empty: give at least one value")
        values = tuple(_freeze(v) for v in raw)
        _check(len(set(map(repr, values))) == len(values), f"axis {key!r} repeats a value")
        return Axis(key, path, values=values)
    if isinstance(raw, Mapping):
        _check(len(raw) == 1 and next(iter(raw)) in DISTRIBUTIONS,
               f"axis {key!r}: a mapping must be one of "
               + ", ".join(f"{{{d}: [low, high]}}" for d in DISTRIBUTIONS) + f"; got {dict(raw)}")
        dist, bounds = next(iter(raw.items()))
        _check(isinstance(bounds, (list, tuple)) and len(bounds) == 2
               and all(_number(b) for b in bounds),
               f"axis {key!r}: {dist} needs [low, high] as two finite numbers; got {bounds!r}")
        low, high = float(bounds[0]), float(bounds[1])
        _check(low < high, f"axis {key!r}: {dist} range [{low}, {high}] needs low < high")
        if dist == "log_uniform":
            _check(low > 0, f"axis {key!r}: log_uniform needs low > 0; got {low}")
        if dist == "int_uniform":
            _check(low == int(low) and high == int(high),
                   f"axis {key!r}: int_uniform needs integer bounds; got [{low}, {high}]")
        return Axis(key, path, distribution=dist, low=low, high=high)
    raise SweepError(f"axis {key!r}: give a list of values or a distribution "
                     f"({', '.join(DISTRIBUTIONS)}); got {raw!r}")


def _metric(raw: Any) -> Metric:
    if isinstance(raw, str):
        return Metric(name=raw)
    _check(isinstance(raw, Mapping), f"metric: a name or {{name, mode, last}}; got {raw!r}")
    unknown = set(raw) - {"name", "mode", "last"}
    _check(not unknown, f"metric: unknown keys {sorted(unknown)}; it takes name, mode, last")
    m = Metric(**raw)
    _check(isinstance(m.name, str) and m.name, f"metric: name must be a string; got {m.name!r}")
    _check(m.mode in ("max", "min"), f"metric: mode is max or min; got {m.mode!r}")
    _check(isinstance(m.last, int) and not isinstance(m.last, bool) and m.last >= 1,
           f"metric: last is a number of calls >= 1; got {m.last!r}")
    return m


def _seeds(raw: Any) -> Tuple[int, ...]:
    if isinstance(raw, int) and not isinstance(raw, bool):
        _check(raw >= 1, f"seeds: a count >= 1 or a list of seeds; got {raw}")
        return tuple(range(raw))
    _check(isinstance(raw, (list, tuple)) and len(raw) > 0
           and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw),
           f"seeds: a count >= 1 or a non-empty list of seeds >= 0; got {raw!r}")
    _check(len(set(raw)) == len(raw), f"seeds: {list(raw)} repeats a seed")
    return tuple(raw)


def from_mapping(raw: Mapping[str, Any], default_name: str = "sweep") -> SweepSpec:
    """A validated :class:`SweepSpec` from a spec mapping.

    Raises:
        SweepError: for anything the spec gets wrong, before anything trains.
    """
    _check(isinstance(raw, Mapping), f"a sweep spec is a mapping of keys; got {type(raw).__name__}")
    unknown = [k for k in raw if k not in SPEC_KEYS]
    if unknown:
        import difflib

        hints = [f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(
            str(k), SPEC_KEYS, 1)) else repr(k) for k in unknown]
        raise SweepError(f"unknown spec keys {', '.join(hints)}; a spec takes "
                         f"{', '.join(SPEC_KEYS)}")
    name = raw.get("name", default_name)
    _check(isinstance(name, str) and name and "/" not in name,
           f"name: a non-empty string without '/'; got {name!r}")
    base = raw.get("base")
    _check(base is None or isinstance(base, str), f"base: a preset or a file; got {base!r}")
    overrides = raw.get("overrides", [])
    if isinstance(overrides, Mapping):
        overrides = [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                     for k, v in overrides.items()]
    _check(isinstance(overrides, (list, tuple)) and all(isinstance(o, str) for o in overrides),
           f"overrides: a list of key=value strings or a mapping; got {overrides!r}")
    try:
        base_config = load_config(base, list(overrides))
    except ConfigError as e:
        raise SweepError(f"base config: {e}") from None

    axes_raw = raw.get("axes", {})
    _check(isinstance(axes_raw, Mapping), f"axes: a mapping of config keys; got {axes_raw!r}")
    axes = tuple(_axis(k, v, base_config) for k, v in axes_raw.items())
    paths = [a.path for a in axes]
    dup = {p for p in paths if paths.count(p) > 1}
    _check(not dup, f"axes {[a.key for a in axes if a.path in dup]} name the same key "
                    f"{sorted(dup)}")
    samples = raw.get("samples", 1)
    _check(isinstance(samples, int) and not isinstance(samples, bool) and samples >= 1,
           f"samples: a count >= 1; got {samples!r}")
    _check(samples == 1 or any(a.sampled for a in axes),
           "samples > 1 needs a sampled axis ({uniform|log_uniform|int_uniform: [low, high]}); "
           "a grid is not resampled")
    sampler = raw.get("sampler", "sobol")
    _check(sampler in SAMPLERS, f"sampler: one of {', '.join(SAMPLERS)}; got {sampler!r}")
    seeds = _seeds(raw.get("seeds", 1))

    budget_raw = raw.get("budget", {})
    if _number(budget_raw):
        budget_raw = {"total_env_steps": budget_raw}
    _check(isinstance(budget_raw, Mapping), f"budget: {{total_env_steps, time_limit_s}}; got "
                                            f"{budget_raw!r}")
    bad = set(budget_raw) - set(BUDGET_KEYS)
    _check(not bad, f"budget: unknown keys {sorted(bad)}; it takes {', '.join(BUDGET_KEYS)}")
    budget = {k: int(v) if k == "total_env_steps" and _number(v) else v
              for k, v in budget_raw.items()}
    if "total_env_steps" in budget:
        _check(_number(budget["total_env_steps"]) and budget["total_env_steps"] > 0,
               f"budget: total_env_steps must be > 0; got {budget['total_env_steps']!r}")
    metric = _metric(raw.get("metric", "success"))
    every = raw.get("checkpoint_every", 10)
    _check(isinstance(every, int) and not isinstance(every, bool) and every >= 1,
           f"checkpoint_every: host calls >= 1; got {every!r}")
    per_program = raw.get("trials_per_program")
    _check(per_program is None or (isinstance(per_program, int)
                                   and not isinstance(per_program, bool) and per_program >= 1),
           f"trials_per_program: an integer >= 1 (or leave it out: all trials that share a "
           f"program train together); got {per_program!r}")
    ray_raw = raw.get("ray", {}) or {}
    _check(isinstance(ray_raw, Mapping), f"ray: a mapping; got {ray_raw!r}")
    bad = set(ray_raw) - set(RAY_KEYS)
    _check(not bad, f"ray: unknown keys {sorted(bad)}; it takes {', '.join(RAY_KEYS)}")
    if "scheduler" in ray_raw:
        _check(ray_raw["scheduler"] in ("asha", "fifo"),
               f"ray.scheduler: asha or fifo; got {ray_raw['scheduler']!r}")
    resources = ray_raw.get("resources_per_trial", {"cpu": 1})
    _check(isinstance(resources, Mapping) and all(
        isinstance(k, str) and _number(v) and v >= 0 for k, v in resources.items()),
        f"ray.resources_per_trial: {{cpu: 1, gpu: 0, ...}}; got {resources!r}")
    for key in ("max_concurrent_trials", "grace_period"):
        v = ray_raw.get(key, 1)
        _check(isinstance(v, int) and not isinstance(v, bool) and v >= 1,
               f"ray.{key}: an integer >= 1; got {v!r}")

    spec = SweepSpec(name, base, tuple(overrides), axes, samples, sampler, seeds,
                     tuple(sorted(budget.items())), metric, every,
                     tuple(sorted((k, _freeze(v)) for k, v in ray_raw.items())), base_config,
                     per_program)
    # Every trial's config is built now, so a value the config rejects (a negative learning
    # rate, an unknown optimizer, a max_digits the env refuses) fails here, naming its axis.
    for point in _grid([a for a in axes if not a.sampled]):
        for draw in (_draws([a for a in axes if a.sampled], samples, sampler, seeds[0])
                     if any(a.sampled for a in axes) else [{}]):
            values = tuple((a.key, {**point, **draw}[a.key]) for a in axes)
            try:
                trial_config(spec, values, seeds[0])
            except (ConfigError, TypeError, ValueError) as e:
                raise SweepError(f"the trial {dict(values)}: {e}") from None
    return spec


def load_spec(path: str, overrides: Sequence[str] = ()) -> SweepSpec:
    """A spec file with ``key=value`` overrides of the spec's keys (``seeds=3``,
    ``budget.total_env_steps=1e5``, ``axes.learning_rate=[1e-3,3e-3]``); any other key is added
    to the base config's ``overrides`` (``max_digits=3``)."""
    if not os.path.isfile(path):
        raise SweepError(f"no sweep spec at {path}")
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0]
        raise SweepError(f"{path} is not valid YAML: {first}") from None
    if raw is None:
        raw = {}
    _check(isinstance(raw, dict), f"{path}: a sweep spec is a mapping of keys")
    raw = apply_overrides(raw, overrides)
    name = os.path.splitext(os.path.basename(path))[0]
    return from_mapping(raw, default_name=name)


def apply_overrides(raw: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """The spec mapping with ``key=value`` words applied (see :func:`load_spec`)."""
    raw = json.loads(json.dumps(raw, default=str)) if raw else {}
    for word in overrides:
        key, sep, text = word.partition("=")
        _check(bool(sep) and bool(key), f"expected key=value, got {word!r}")
        value = parse_value(text)
        top = key.split(".")[0]
        if top in SPEC_KEYS and top not in ("overrides",):
            node = raw
            parts = key.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
                _check(isinstance(node, dict), f"{key}: {p} is not a mapping in the spec")
            node[parts[-1]] = value
        else:
            raw.setdefault("overrides", [])
            if isinstance(raw["overrides"], dict):
                raw["overrides"] = [f"{k}={v}" for k, v in raw["overrides"].items()]
            raw["overrides"].append(word)
    return raw


def spec_digest(spec: SweepSpec) -> str:
    """What identifies a sweep's trials (a resumed sweep must have the same)."""
    return hashlib.sha1(json.dumps(spec.to_dict(), sort_keys=True, default=str).encode()
                        ).hexdigest()[:16]
