"""A versioned library of trained skills on disk.

```
skills/                          the root: $NPIGYM_SKILLS, or skills/ under the cwd
  bubblesort/
    v1/
      skill.yaml                 what the skill is (below)
      params.npz                 the policy's parameters, flattened
      config.yaml                a copy of the training run's config
    v2/ ...
```

``skill.yaml`` says everything needed to rebuild the skill without the run directory: the env
id and keyword arguments the policy trained in (``env_kwargs``, the task as posed, not the
training distribution's ``train_env_kwargs``) and skills bound in it (``env_skills``), the
program it executes and that program's signature, the network config, a summary of the
observation spec the policy reads, a sha256 of the parameters, and its measured success per
instance size. :func:`load` checks the parameters' hash and that the rebuilt env shows the
policy the observations it was trained on, so a change to a task that would silently feed a
skill other inputs fails with one message instead of a policy acting on garbage.

```python
from npigym import skills
skills.save("runs/Sorting-v0-a2c-2026...", "bubblesort", eval_sizes=(5, 20))
skill = skills.load("bubblesort")            # or bubblesort@v1, a version dir, a run dir
env = npigym.make("Max-v0", skills={"BUBBLESORT": skill})   # or {"BUBBLESORT": "bubblesort"}
```
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from npigym.envs.machine.skill import Skill
from npigym.skills.policy import SkillError, check_program, check_seed_index, make_skill

ENV_VAR = "NPIGYM_SKILLS"
DEFAULT_ROOT = "skills"
META = "skill.yaml"
PARAMS = "params.npz"
RUN_CONFIG = "config.yaml"
FORMAT = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
VERSION_RE = re.compile(r"^v([1-9][0-9]*)$")
# Separates the levels of a parameter's path in params.npz (haiku module names contain "/").
KEY_SEP = "|"
AC_AGENT = "actor_critic"


@dataclasses.dataclass(frozen=True)
class SkillInfo:
    """A saved skill version, as ``skill.yaml`` describes it.

    Attributes:
        name, version: the skill is ``name@v<version>``.
        path: its version directory.
        created: when it was saved (ISO 8601, local time).
        source: the run directory it was saved from (absolute).
        seed_index: which of the run's seeds.
        env, env_kwargs, env_skills: how to rebuild the env the policy trained on.
        program: the program the policy executes; ``signature`` its arguments (name, values).
        observation_spec: leaf shapes, dtypes and value ranges the policy reads.
        params_sha256: hash of the parameters (see :func:`params_hash`).
        network: the network config.
        success: success rate per instance size (``{size: rate}``; empty when not measured).
        success_source: how ``success`` was measured, or why it is empty.
        agent: which agent the parameters are: ``"actor_critic"`` (``network`` is its
            network config) or ``"npi"`` (``network`` is the NPI's sizes; ``npi`` says the
            task, program table, end modes, mask and alpha of its interpreter). Written to
            ``skill.yaml`` only for NPIs (absent: actor-critic).
        npi: see ``agent`` (empty for actor-critic skills).
    """

    name: str
    version: int
    path: str
    created: str
    source: str
    seed_index: int
    env: str
    env_kwargs: Mapping[str, Any]
    env_skills: Mapping[str, str]
    program: str
    signature: List[Dict[str, Any]]
    observation_spec: Any
    params_sha256: str
    network: Mapping[str, Any]
    success: Mapping[Any, float]
    success_source: str
    agent: str = AC_AGENT
    npi: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def to_yaml_dict(self) -> Dict[str, Any]:
        """The contents of the skill's ``skill.yaml``."""
        out = {"format": FORMAT, **dataclasses.asdict(self)}
        del out["path"]
        if self.agent == AC_AGENT:  # actor-critic skill.yaml files are as they always were
            del out["agent"], out["npi"]
        return _plain(out)

    def describe(self) -> str:
        """Several lines for ``npigym skills show``."""
        args = ", ".join(f"{a['name']}: {'/'.join(a['values'])}" for a in self.signature)
        sizes = ", ".join(f"{k}: {v:.3f}" for k, v in self.success.items()) or "not measured"
        lines = [f"{self.ref}  ({self.path})",
                 f"  program   {self.program}({args})",
                 f"  env       {self.env} {dict(self.env_kwargs)}"
                 + (f" skills {dict(self.env_skills)}" if self.env_skills else ""),
                 f"  source    {self.source} (seed index {self.seed_index})",
                 *([f"  agent     {self.agent} (task {self.npi.get('task')}, mask "
                    f"{self.npi.get('mask')}, alpha {self.npi.get('alpha')})"]
                   if self.agent != AC_AGENT else []),
                 f"  created   {self.created}",
                 f"  success   {sizes} [{self.success_source}]",
                 f"  params    sha256 {self.params_sha256}"]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Pure helpers: parameters, hashes and spec summaries.
# ----------------------------------------------------------------------------------------------
def _flat_leaves(tree: Any) -> Dict[str, Any]:
    """``{"module|name": leaf}`` of a (nested dict) parameter tree."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {KEY_SEP.join(str(getattr(k, "key", getattr(k, "name", k))) for k in path): leaf
            for path, leaf in leaves}


def flatten_params(params: Any) -> Dict[str, np.ndarray]:
    """``{"module|name": array}`` of a (nested dict) parameter tree."""
    return {k: np.asarray(v) for k, v in _flat_leaves(params).items()}


def unflatten_params(flat: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """The nested dict of :func:`flatten_params`' output (haiku's params layout)."""
    out: Dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(KEY_SEP)
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = jnp.asarray(value)
    return out


def params_hash(flat: Mapping[str, np.ndarray]) -> str:
    """sha256 of flattened parameters: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(flat):
        a = np.ascontiguousarray(flat[key])
        h.update(f"{key}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _leaf_summary(spec: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {"shape": list(spec.shape), "dtype": np.dtype(spec.dtype).name}
    if hasattr(spec, "num_values"):
        out["num_values"] = np.asarray(spec.num_values).tolist()
    elif hasattr(spec, "minimum"):
        out["minimum"] = np.min(np.asarray(spec.minimum)).item()
        out["maximum"] = np.max(np.asarray(spec.maximum)).item()
    return out


def spec_summary(spec: Any) -> Any:
    """A JSON-able tree of an observation spec's leaves (shape, dtype, value range)."""
    from jumanji import specs

    if spec is None:
        return None
    if isinstance(spec, specs.Array):
        return _leaf_summary(spec)
    # jumanji.specs.Spec keeps its children in ``_specs`` and has no public accessor for them.
    return {k: spec_summary(v) for k, v in sorted(spec._specs.items()) if v is not None}


def _plain(x: Any) -> Any:
    """Tuples as lists, numpy scalars as Python's: what ``yaml.safe_dump`` takes."""
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def _jsonable(x: Any) -> Any:
    """``_plain`` of a round trip through JSON, so a summary compares equal to its YAML copy."""
    return json.loads(json.dumps(_plain(x)))


# ----------------------------------------------------------------------------------------------
# Where skills live.
# ----------------------------------------------------------------------------------------------
def skills_root(root: Optional[str] = None) -> str:
    """``root``, else ``$NPIGYM_SKILLS``, else ``skills/`` under the current directory."""
    return root or os.environ.get(ENV_VAR) or os.path.join(os.getcwd(), DEFAULT_ROOT)


def _versions(name_dir: str) -> List[int]:
    if not os.path.isdir(name_dir):
        return []
    found = [VERSION_RE.match(d) for d in os.listdir(name_dir)]
    return sorted(int(m.group(1)) for m in found if m)


def skill_names(root: Optional[str] = None) -> List[str]:
    """Names with at least one version under ``root``."""
    root = skills_root(root)
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root)
                  if NAME_RE.match(d) and _versions(os.path.join(root, d)))


def _is_run_dir(path: str) -> bool:
    """A run directory of ``npigym train`` (a version directory holds a copy of its config
    too, so it is told apart by its own files)."""
    from npigym.experiments import run_dir as rd

    return rd.is_run_dir(path) and not any(
        os.path.exists(os.path.join(path, f)) for f in (META, PARAMS))


def _is_version_dir(path: str) -> bool:
    return os.path.isdir(path) and (os.path.exists(os.path.join(path, META))
                                    or bool(VERSION_RE.match(os.path.basename(
                                        os.path.normpath(path)))))


def resolve(ref: str, root: Optional[str] = None) -> str:
    """The version directory of ``NAME``, ``NAME@vK``, or a path to a version or name dir.

    Raises:
        SkillError: an unknown name (listing the known ones) or a missing version.
    """
    if not isinstance(ref, str) or not ref:
        raise SkillError(f"a skill reference must be a non-empty string, not {ref!r}")
    if os.path.isdir(ref):
        if _is_version_dir(ref):
            return ref
        versions = _versions(ref)
        if versions:  # a name directory: its latest version
            return os.path.join(ref, f"v{versions[-1]}")
        raise SkillError(f"{ref} is neither a skill version directory (no {META}) nor a run "
                         "directory of `npigym train`")
    root = skills_root(root)
    name, at, version = ref.partition("@")
    known = skill_names(root)
    if not NAME_RE.match(name) or name not in known:
        listed = ", ".join(known) if known else "none"
        raise SkillError(f"no skill {name!r} in {root}; known skills: {listed}")
    versions = _versions(os.path.join(root, name))
    if not at:
        return os.path.join(root, name, f"v{versions[-1]}")
    m = VERSION_RE.match(version)
    if not m or int(m.group(1)) not in versions:
        raise SkillError(f"skill {name} has no version {version!r}; versions: "
                         f"{', '.join(f'v{v}' for v in versions)}")
    return os.path.join(root, name, version)


def read_info(version_dir: str) -> SkillInfo:
    """The :class:`SkillInfo` of a version directory.

    Raises:
        SkillError: a missing, unreadable or incomplete ``skill.yaml``.
    """
    path = os.path.join(version_dir, META)
    if not os.path.exists(path):
        raise SkillError(f"{version_dir}: no {META}; not a saved skill (or a broken save)")
    try:
        with open(path) as f:
            meta = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise SkillError(f"{path}: corrupt {META} ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    fields = [f.name for f in dataclasses.fields(SkillInfo) if f.name != "path"
              and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    optional = [f.name for f in dataclasses.fields(SkillInfo) if f.name not in [*fields, "path"]]
    if not isinstance(meta, dict):
        raise SkillError(f"{path}: corrupt {META} (not a mapping)")
    missing = [k for k in fields if k not in meta]
    if missing:
        raise SkillError(f"{path}: corrupt {META}: missing {', '.join(missing)}")
    if meta.get("format") != FORMAT:
        raise SkillError(f"{path}: {META} has format {meta.get('format')!r}; this npigym reads "
                         f"format {FORMAT}")
    return SkillInfo(path=version_dir, **{k: meta[k] for k in fields + optional if k in meta})


def info(ref: str, root: Optional[str] = None) -> SkillInfo:
    """What a saved skill is (``NAME``, ``NAME@vK`` or a version directory)."""
    if isinstance(ref, str) and _is_run_dir(ref):
        raise SkillError(f"{ref} is a run directory, not a saved skill; save it with "
                         f"`npigym skills save {ref} --name NAME`")
    return read_info(resolve(ref, root))


def list_skills(root: Optional[str] = None) -> List[SkillInfo]:
    """Every saved version under ``root``, by name then version (unreadable ones are skipped
    with a warning)."""
    root = skills_root(root)
    out = []
    for name in skill_names(root):
        for v in _versions(os.path.join(root, name)):
            try:
                out.append(read_info(os.path.join(root, name, f"v{v}")))
            except SkillError as e:
                warnings.warn(str(e), stacklevel=2)
    return out


# ----------------------------------------------------------------------------------------------
# Saving.
# ----------------------------------------------------------------------------------------------
DEFAULT_EVAL_SIZES = (5, 20, 100)


def save(run_dir: str, name: str, program: Optional[str] = None, seed_index: int = 0,
         root: Optional[str] = None, eval_sizes: Optional[Sequence[int]] = DEFAULT_EVAL_SIZES,
         episodes: int = 20, task: Optional[str] = None) -> SkillInfo:
    """Save a run's policy as the next version of skill ``name``.

    Args:
        run_dir: an actor-critic run directory of ``npigym train``, or an NPI run directory
            (``npigym npi-train``: saved with ``agent: npi``, see
            :func:`npigym.skills.npi.skill_from_npi_run`).
        name: the skill's name (letters, digits, ``_ . -``).
        program: the program the skill executes (default: the env's root).
        seed_index: which of the run's seeds.
        root: the library's root (default :func:`skills_root`).
        eval_sizes: instance sizes to measure success at, when ``program`` is the env's root
            (empty or None: not measured). For another program the run's ``eval.json`` (the
            whole task's success) is recorded if present.
        episodes: episodes per size.
        task: NPI runs only: which env of a multi-task run (an env id or task family).

    Raises:
        SkillError: a bad name, not a run directory, a missing seed, or a program the policy
            does not execute.
    """
    from npigym.experiments import run_dir as rd
    from npigym.experiments.config import ConfigError, to_dict
    from npigym.experiments.evaluate import length_table, load_run
    from npigym.experiments.factory import make_env

    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SkillError(f"skill name must be letters, digits, '_', '.' or '-' (not starting "
                         f"with a symbol), not {name!r}")
    if not rd.is_run_dir(run_dir):
        raise SkillError(f"{run_dir} is not a run directory of `npigym train` (no {rd.CONFIG})")
    if episodes < 1:
        raise SkillError(f"episodes must be >= 1, not {episodes}")
    if _is_npi_run(run_dir):
        return _save_npi(run_dir, name, program, seed_index, root, eval_sizes, episodes, task)
    if task is not None:
        raise SkillError(f"{run_dir}: task= is for NPI runs; an actor-critic run has one env")
    try:
        config, _, params, _ = load_run(run_dir)
        env = make_env(config, whole_task=True)
    except (ConfigError, FileNotFoundError) as e:
        raise SkillError(f"{run_dir}: {e}") from None
    seed_index = check_seed_index(seed_index, len(params), run_dir)
    program = check_program(env, program, run_dir)
    params = params[seed_index]
    unwrapped = getattr(env, "unwrapped", env)
    flat = {k: np.asarray(v) for k, v in flatten_params(jax.device_get(params)).items()}

    root_program = unwrapped.library.names[unwrapped.library.root]
    if program == root_program and eval_sizes:
        knobs = getattr(type(unwrapped), "size_knobs", ())
        sizes = [int(s) for s in eval_sizes] if knobs else [None]
        rows = length_table(config, [params], sizes, episodes)
        success = {(r["length"] if r["length"] is not None else "default"): r["success"]
                   for r in rows}
        source = f"evaluated: {program} as the whole task, greedy, {episodes} episodes per size"
    elif program == root_program:
        success, source = {}, "not measured (no eval sizes given)"
    else:
        seed = config.seed + seed_index
        success, source = _run_eval_success(run_dir, lambda r: r["seed"] == seed, root_program,
                                            program)

    info = SkillInfo(
        name=name, version=0, path="", created=datetime.datetime.now().isoformat(
            timespec="seconds"),
        source=os.path.abspath(run_dir), seed_index=seed_index, env=config.env,
        env_kwargs=_plain(dict(config.env_kwargs)),
        env_skills={k: _pin(v) for k, v in dict(getattr(config, "skills", {})).items()},
        program=program,
        signature=[{"name": a.name, "values": list(a.values)}
                   for a in unwrapped.library[program].args],
        observation_spec=_jsonable(spec_summary(unwrapped.observation_spec)),
        params_sha256=params_hash(flat), network=to_dict(config.network),
        success=success, success_source=source)
    return _write(info, flat, os.path.join(run_dir, rd.CONFIG), skills_root(root))


def _is_npi_run(run_dir: str) -> bool:
    from npigym.experiments.npi_runs import is_npi_run

    return is_npi_run(run_dir)


def _save_npi(run_dir: str, name: str, program: Optional[str], seed_index: int,
              root: Optional[str], eval_sizes: Optional[Sequence[int]], episodes: int,
              task: Optional[str]) -> SkillInfo:
    """:func:`save` of an NPI run (one model: seed index 0 only)."""
    from npigym.skills import npi

    check_seed_index(seed_index, 1, run_dir)
    fields, params, config_path = npi.save_fields(run_dir, program, task, eval_sizes, episodes)
    flat = {k: np.asarray(v) for k, v in flatten_params(jax.device_get(params)).items()}
    info = SkillInfo(name=name, version=0, path="",
                     created=datetime.datetime.now().isoformat(timespec="seconds"),
                     params_sha256=params_hash(flat), **fields)
    return _write(info, flat, config_path, skills_root(root))


def _pin(ref: str) -> str:
    """A nested skill reference pinned to the version it means now (``NAME`` -> ``NAME@vK``)."""
    try:
        found = read_info(resolve(ref))
    except SkillError:
        return ref
    return found.ref if not os.path.isdir(ref) else os.path.abspath(found.path)


def _run_eval_success(run_dir: str, keep: Callable[[Dict[str, Any]], bool], root_program: str,
                      program: str) -> Tuple[Dict[Any, float], str]:
    """The training run's recorded whole-task success (for a skill that is not the root), from
    the rows of its ``eval.json`` that ``keep`` selects (one seed's, or one env's)."""
    from npigym.experiments import run_dir as rd

    path = os.path.join(run_dir, rd.EVAL_JSON)
    if not os.path.exists(path):
        return {}, (f"not measured: {program} is not its env's root ({root_program}), so it "
                    f"cannot be evaluated as a whole task, and the run has no {rd.EVAL_JSON}")
    try:
        with open(path) as f:
            rows = json.load(f)["rows"]
        success = {(r["length"] if r["length"] is not None else "default"): float(r["success"])
                   for r in rows if keep(r)}
    except (OSError, ValueError, KeyError, TypeError):
        return {}, f"not measured: the run's {rd.EVAL_JSON} is unreadable"
    return success, (f"the training run's {rd.EVAL_JSON}: success of the whole task "
                     f"{root_program}, not of {program} alone")


def _write(info: SkillInfo, flat: Dict[str, np.ndarray], config_path: str, root: str
           ) -> SkillInfo:
    """Write a version directory atomically (a temp dir renamed to ``vK``; K the next free)."""
    name_dir = os.path.join(root, info.name)
    os.makedirs(name_dir, exist_ok=True)
    tmp = os.path.join(name_dir, f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        np.savez(os.path.join(tmp, PARAMS), **flat)
        shutil.copyfile(config_path, os.path.join(tmp, RUN_CONFIG))
        while True:
            version = (_versions(name_dir) or [0])[-1] + 1
            info = dataclasses.replace(info, version=version,
                                       path=os.path.join(name_dir, f"v{version}"))
            with open(os.path.join(tmp, META), "w") as f:
                yaml.safe_dump(info.to_yaml_dict(), f, sort_keys=False)
            try:
                os.rename(tmp, info.path)
                return info
            except OSError:  # another save took this version first
                if not os.path.exists(info.path):
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# Loading.
# ----------------------------------------------------------------------------------------------
def read_params(info: SkillInfo) -> Dict[str, np.ndarray]:
    """The flattened parameters of a version, checked against the hash in ``skill.yaml``.

    Raises:
        SkillError: a missing or corrupt params file, or a hash mismatch.
    """
    path = os.path.join(info.path, PARAMS)
    if not os.path.exists(path):
        raise SkillError(f"skill {info.ref}: missing {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            flat = {k: data[k] for k in data.files}
    except Exception as e:  # zipfile.BadZipFile, OSError, ValueError, EOFError...
        raise SkillError(f"skill {info.ref}: corrupt {path} ({type(e).__name__})") from None
    if params_hash(flat) != info.params_sha256:
        raise SkillError(f"skill {info.ref}: parameters changed since saved ({path} does not "
                         "match the sha256 in its skill.yaml)")
    return flat


def _rebuild_env(info: SkillInfo) -> Tuple[Any, Any]:
    """The env the skill trained on and its :class:`TrainConfig`, from ``skill.yaml``."""
    from npigym.experiments.config import ConfigError, from_dict
    from npigym.experiments.factory import make_env

    try:
        config = from_dict({"env": info.env, "env_kwargs": dict(info.env_kwargs),
                            "skills": dict(info.env_skills), "network": dict(info.network)})
        env = make_env(config, whole_task=True)
    except ConfigError as e:
        raise SkillError(f"skill {info.ref}: cannot rebuild its env: {e}") from None
    return getattr(env, "unwrapped", env), config


def _check_params_fit(info: SkillInfo, flat: Mapping[str, np.ndarray], env: Any, network: Any
                      ) -> None:
    """The saved parameters have the names and shapes the rebuilt network needs."""

    def init():
        _, ts = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 1))
        return network.init(jax.random.PRNGKey(0), ts.observation, jnp.ones((1,), bool))

    wanted = {k: (tuple(v.shape), np.dtype(v.dtype).name)
              for k, v in _flat_leaves(jax.eval_shape(init)).items()}
    have = {k: (tuple(v.shape), v.dtype.name) for k, v in flat.items()}
    if wanted != have:
        diff = sorted(set(wanted.items()) ^ set(have.items()))[:3]
        raise SkillError(f"skill {info.ref}: its parameters do not fit the network rebuilt from "
                         f"{META} (first differences: {diff})")


def load(ref: str, budget: Optional[int] = None, root: Optional[str] = None) -> Skill:
    """A saved skill (``NAME``, ``NAME@vK``, a version directory) or a run directory's policy
    (an actor-critic run's, or an NPI run's executing its env's root).

    Checked before anything compiles: ``skill.yaml`` and the params file are readable, the
    parameters hash to the saved sha256, the rebuilt env has the program and shows the
    observation spec the policy was trained on, and the parameters fit the rebuilt network.

    Raises:
        SkillError: saying which of those failed.
    """
    from npigym.agents.networks import make_network
    from npigym.skills.policy import skill_from_run

    if isinstance(ref, str) and _is_run_dir(ref):
        if _is_npi_run(ref):
            from npigym.skills.npi import skill_from_npi_run

            return skill_from_npi_run(ref, budget=budget)
        return skill_from_run(ref, budget=budget)
    info = read_info(resolve(ref, root))
    flat = read_params(info)
    if info.agent == "npi":
        from npigym.skills.npi import load_saved

        return load_saved(info, flat, budget)
    if info.agent != AC_AGENT:
        raise SkillError(f"skill {info.ref}: unknown agent {info.agent!r} in its {META}")
    env, config = _rebuild_env(info)
    if getattr(env, "library", None) is None or info.program not in env.library:
        programs = list(env.library.names[1:]) if hasattr(env, "library") else []
        raise SkillError(f"skill {info.ref}: no program {info.program!r} in its env "
                         f"{info.env} {dict(info.env_kwargs)}; programs are {programs}")
    summary = _jsonable(spec_summary(env.observation_spec))
    if summary != _jsonable(info.observation_spec):
        diff = _spec_diff(_jsonable(info.observation_spec), summary)
        raise SkillError(f"skill {info.ref}: observation spec mismatch: {info.env} "
                         f"{dict(info.env_kwargs)} now shows {diff} (the task changed since "
                         "the skill was saved; retrain it or rebuild the old env)")
    network = make_network(env, config.network)
    _check_params_fit(info, flat, env, network)
    return make_skill(env, network, unflatten_params(flat), info.program, budget,
                      name=info.ref, where=f"skill {info.ref}")


def _spec_diff(saved: Any, now: Any, path: str = "") -> str:
    """The first leaf where two spec summaries differ, as ``path: saved -> now``."""
    if isinstance(saved, dict) and isinstance(now, dict) and not ({"shape", "dtype"}
                                                                  <= saved.keys()):
        for k in sorted(set(saved) | set(now)):
            if saved.get(k) != now.get(k):
                return _spec_diff(saved.get(k), now.get(k), f"{path}/{k}" if path else k)
    return f"{path or 'observation'}: saved {saved} -> now {now}"
