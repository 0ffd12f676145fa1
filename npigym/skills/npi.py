"""Trained NPIs as :class:`~npigym.envs.machine.skill.Skill` s.

An NPI run (``npigym npi-train``) trains one model that executes every program with a frame in
its expert traces (the root and the agent programs below it, as the traces posed them:
hierarchically). :func:`skill_from_npi_run` makes any of those programs a skill: its ``env`` is
the env the traces came from, its ``act`` one greedy decision of the interpreter
(:func:`npigym.agents.npi.interpreter.decide`, the same pure function the batched evaluation
and ``npi-play`` run), its memory the interpreter's state for one env (an LSTM state per
call-stack frame, the pending-return flags, the previous depth).

```python
from npigym import skills
add = skills.skill_from_npi_run("runs/add-npi", "ADD")
env = npigym.make("Multiplication-v0", skills={"ADD": add})
skills.save("runs/add-npi", "add-npi", program="ADD")   # skill.yaml says agent: npi
```
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp

from npigym.envs.machine.library import AGENT as AGENT_MODE
from npigym.envs.machine.skill import ActFn, Skill
from npigym.skills.policy import SkillError

AGENT = "npi"  # ``agent`` in skill.yaml


def npi_act(step: Any, zero_state: Any, tables: Any, max_depth: int, mask: str, alpha: float
            ) -> Tuple[ActFn, Any]:
    """``(act, initial_memory)`` of the interpreter for one env.

    ``act(params, memory, observation, first, invalid)`` is one :func:`interpreter.decide`:
    memory is the :class:`~npigym.agents.npi.interpreter.InterpreterState` (reset on
    ``first``, as :class:`~npigym.agents.npi.interpreter.HostPolicy` resets on an episode's
    first step); ``invalid`` is ignored (the interpreter does not see refusals either).
    """
    from npigym.agents.npi import interpreter

    def initial_memory() -> Any:
        return interpreter.initial_state(zero_state, max_depth)

    def act(params: Any, memory: Any, observation: Any, first: Any, invalid: Any
            ) -> Tuple[Any, Any]:
        del invalid
        memory = jax.tree.map(lambda m, z: jnp.where(first, z, m), memory, initial_memory())
        memory, action = interpreter.decide(step, params, zero_state, tables, memory,
                                            observation, mask, alpha)
        return action, memory

    return act, initial_memory


def trained_programs(meta: Mapping[str, Any], task: str, env: Any) -> List[str]:
    """The programs of ``env`` the NPI was trained to execute: those with frames in the run's
    traces of ``task`` (``npi.json``'s end modes), in library order, agent mode only."""
    modes = meta.get("end_modes", {}).get(task)
    if modes is None:  # an older npi.json: every agent program of the env
        from npigym.skills.policy import agent_programs

        return agent_programs(env.library)
    return [p.name for p in env.library.programs if p.name in modes and p.mode == AGENT_MODE]


def _candidates(run: Any, run_dir: str) -> List[Tuple[Dict[str, Any], Any, str]]:
    """``(spec, env, task name)`` of every env id the run trained on (first spec of each)."""
    from npigym.agents.npi.model import task_layout
    from npigym.experiments import npi_runs

    specs = list(run.meta.get("env_list") or run.meta.get("envs", {}).values())
    out, seen = [], set()
    for spec in specs:
        if spec["env_id"] in seen:
            continue
        seen.add(spec["env_id"])
        spec = {"env_id": spec["env_id"], "env_kwargs": dict(spec["env_kwargs"])}
        try:
            env = npi_runs.make_env(spec)
        except npi_runs.RunConfigError as e:
            raise SkillError(f"{run_dir}: cannot rebuild the env its traces came from: {e}") \
                from None
        out.append((spec, env, task_layout(env).name))
    if not out:
        raise SkillError(f"{run_dir}: its npi.json names no env the traces came from")
    return out


def select_env(run: Any, run_dir: str, program: Optional[str], task: Optional[str]
               ) -> Tuple[Dict[str, Any], Any, str, str]:
    """``(spec, env, task name, program)``: the env in which the NPI executes ``program``.

    ``task`` (an env id, e.g. ``Sorting-v0``, or a task family, e.g. ``sorting``) picks among
    the run's envs; ``program`` None means the chosen env's root.

    Raises:
        SkillError: no env of the run matches ``task``; a program the NPI never executed
            (listing those it did, per env); an ambiguous choice (listing the env ids).
    """
    found = _candidates(run, run_dir)
    if task is not None:
        picked = [c for c in found if task in (c[0]["env_id"], c[2])]
        if not picked:
            raise SkillError(f"{run_dir}: the NPI was not trained on {task!r}; its envs are "
                             f"{[c[0]['env_id'] for c in found]} (tasks "
                             f"{sorted({c[2] for c in found})})")
        found = picked
    known = {c[0]["env_id"]: trained_programs(run.meta, c[2], c[1]) for c in found}
    if program is None:
        if len(found) > 1:
            raise SkillError(f"{run_dir}: the NPI was trained on several envs "
                             f"{list(known)}; name the program and env: "
                              "skills.skill_from_npi_run(RUN_DIR, PROGRAM, task=ENV_ID)")
        spec, env, name = found[0]
        program = env.library.names[env.library.root]
        found = [(spec, env, name)]
    found = [c for c in found if program in known[c[0]["env_id"]]]
    if not found:
        listed = "; ".join(f"{e}: {', '.join(p)}" for e, p in known.items())
        raise SkillError(f"{run_dir}: the NPI was never trained to execute {program!r}; the "
                         f"programs it executes are {listed}")
    if len(found) > 1:
        raise SkillError(f"{run_dir}: the NPI executes {program} in several envs "
                         f"{[c[0]['env_id'] for c in found]}; pick one with task=ENV_ID")
    spec, env, name = found[0]
    return spec, env, name, program


def make_npi_skill(env: Any, model: Any, params: Any, task: str, program: str,
                   end_modes: Optional[Mapping[str, str]], mask: str, alpha: float,
                   budget: Optional[int], name: str) -> Skill:
    """A skill running ``model`` (task ``task``) as the interpreter on ``env`` for
    ``program``."""
    from npigym.agents.npi import interpreter

    env = getattr(env, "unwrapped", env)
    try:
        tables = interpreter.task_tables(model.table, env, end_modes)
        act, initial = npi_act(interpreter.model_step(model, task), model.zero_state, tables,
                               env.max_depth, mask, alpha)
        return Skill(env=env, program=program, params=params, act=act,
                     initial_memory=initial, budget=budget, name=name)
    except (TypeError, ValueError) as e:
        raise SkillError(f"{name}: {e}") from None


def load_npi_run(run_dir: str) -> Any:
    """``npi_runs.load_run``, its errors as :class:`SkillError`."""
    from npigym.experiments import npi_runs

    try:
        return npi_runs.load_run(run_dir)
    except (npi_runs.RunConfigError, FileNotFoundError, KeyError, ValueError) as e:
        raise SkillError(f"{run_dir}: {e}") from None


def skill_from_npi_run(run_dir: str, program: Optional[str] = None,
                       task: Optional[str] = None, budget: Optional[int] = None,
                       name: Optional[str] = None) -> Skill:
    """The NPI of an NPI run directory executing ``program`` as a skill.

    Args:
        run_dir: a run directory of ``npigym npi-train`` (its checkpoint's parameters).
        program: the program the skill executes (one with frames in the run's traces);
            default the root of the run's env (a one-env run only).
        task: which env of a multi-task run (an env id or a task family); needed only when
            the NPI executes ``program`` in several of them.
        budget: decisions one call may take (``Skill.budget``).
        name: the skill's name in messages; default the run directory's name.

    Raises:
        SkillError: not an NPI run directory, or a program (or task) the NPI was not trained
            on, listing those it was.
    """
    from npigym.experiments import npi_runs

    if not isinstance(run_dir, str) or not npi_runs.is_npi_run(run_dir):
        raise SkillError(f"{run_dir} is not an NPI run directory (no config.yaml and "
                         f"{npi_runs.NPI_JSON}; train one with `npigym npi-train`)")
    run = load_npi_run(run_dir)
    _, env, task_name, program = select_env(run, run_dir, program, task)
    label = name or os.path.basename(os.path.normpath(run_dir))
    return make_npi_skill(env, run.model, run.params, task_name, program,
                          run.meta.get("end_modes", {}).get(task_name), run.config.mask,
                          run.config.alpha, budget, label)


# ----------------------------------------------------------------------------------------------
# The library: what skill.yaml records of an NPI, and rebuilding one from it.
# ----------------------------------------------------------------------------------------------
def save_fields(run_dir: str, program: Optional[str], task: Optional[str],
                eval_sizes: Any, episodes: int) -> Tuple[Dict[str, Any], Any, str]:
    """``(fields, params, run config path)``: the :class:`~npigym.skills.library.SkillInfo`
    fields of an NPI run's ``program`` (all but name, version, path, created, hash)."""
    from npigym.experiments import npi_runs
    from npigym.experiments import run_dir as rd
    from npigym.experiments.config import to_dict
    from npigym.skills.library import _jsonable, _plain, _run_eval_success, spec_summary

    run = load_npi_run(run_dir)
    spec, env, task_name, program = select_env(run, run_dir, program, task)
    # The skill must build (the model has rows for every program of the env) before saving.
    make_npi_skill(env, run.model, run.params, task_name, program,
                   run.meta.get("end_modes", {}).get(task_name), run.config.mask,
                   run.config.alpha, None, run_dir)
    root_program = env.library.names[env.library.root]
    if program == root_program and eval_sizes:
        knobs = getattr(type(env), "size_knobs", ())
        sizes = [int(s) for s in eval_sizes] if knobs else [None]
        rows = npi_runs.length_rows(run, spec, sizes, episodes, run.config.eval_batch)
        success = {(r["length"] if r["length"] is not None else "default"): r["success"]
                   for r in rows}
        source = (f"evaluated: {program} as the whole task, NPI interpreter (greedy), "
                  f"{episodes} episodes per size")
    elif program == root_program:
        success, source = {}, "not measured (no eval sizes given)"
    else:
        env_id = spec["env_id"]
        success, source = _run_eval_success(run_dir, lambda r: r.get("env") == env_id,
                                            root_program, program)
    fields = dict(
        source=os.path.abspath(run_dir), seed_index=0, env=spec["env_id"],
        env_kwargs=_plain(spec["env_kwargs"]), env_skills={}, program=program,
        signature=[{"name": a.name, "values": list(a.values)}
                   for a in env.library[program].args],
        observation_spec=_jsonable(spec_summary(env.observation_spec)),
        network=to_dict(run.config.model), success=success, success_source=source,
        agent=AGENT,
        npi=_jsonable({"task": task_name, "table": run.model.table.to_json(),
                       "end_modes": run.meta.get("end_modes", {}).get(task_name),
                       "mask": run.config.mask, "alpha": run.config.alpha}))
    return fields, run.params, os.path.join(run_dir, rd.CONFIG)


def load_saved(info: Any, flat: Mapping[str, Any], budget: Optional[int]) -> Skill:
    """An NPI skill from its ``skill.yaml`` (``info``) and checked parameters ``flat``.

    Raises:
        SkillError: the env cannot be rebuilt, lacks the program or shows other observations;
            the saved model description is broken; the parameters do not fit it.
    """
    from npigym.agents.npi.model import NPIConfig, ProgramTable, make_model
    from npigym.experiments import npi_runs
    from npigym.skills.library import (
        _flat_leaves,
        _jsonable,
        _spec_diff,
        spec_summary,
        unflatten_params,
    )

    where = f"skill {info.ref}"
    try:
        env = npi_runs.make_env({"env_id": info.env, "env_kwargs": dict(info.env_kwargs)})
    except npi_runs.RunConfigError as e:
        raise SkillError(f"{where}: cannot rebuild its env: {e}") from None
    if info.program not in env.library:
        raise SkillError(f"{where}: no program {info.program!r} in its env {info.env} "
                         f"{dict(info.env_kwargs)}; programs are {list(env.library.names[1:])}")
    summary = _jsonable(spec_summary(env.observation_spec))
    if summary != _jsonable(info.observation_spec):
        diff = _spec_diff(_jsonable(info.observation_spec), summary)
        raise SkillError(f"{where}: observation spec mismatch: {info.env} "
                         f"{dict(info.env_kwargs)} now shows {diff} (the task changed since "
                         "the skill was saved; retrain it or rebuild the old env)")
    npi = dict(info.npi or {})
    try:
        config = NPIConfig(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in dict(info.network).items()})
        model = make_model(config, ProgramTable.from_json(npi["table"]))
        task, mask, alpha = npi["task"], npi["mask"], float(npi["alpha"])
        model.table.task(task)
    except (KeyError, TypeError, ValueError) as e:
        raise SkillError(f"{where}: corrupt NPI description in its skill.yaml "
                         f"({type(e).__name__}: {e})") from None
    wanted = {k: (tuple(v.shape), str(v.dtype))
              for k, v in _flat_leaves(jax.eval_shape(model.init, jax.random.PRNGKey(0))).items()}
    have = {k: (tuple(v.shape), str(v.dtype)) for k, v in flat.items()}
    if wanted != have:
        diff = sorted(set(wanted.items()) ^ set(have.items()))[:3]
        raise SkillError(f"{where}: its parameters do not fit the NPI rebuilt from skill.yaml "
                         f"(first differences: {diff})")
    return make_npi_skill(env, model, unflatten_params(flat), task, info.program,
                          npi.get("end_modes"), mask, alpha, budget, info.ref)
