"""NPI runs as skills: the skill decides as the interpreter does, saves and loads (agent: npi),
binds into Multiplication's ADD, and fails with one clear error for programs the NPI never
executed and for directories that are not NPI runs."""

import dataclasses
import io
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import npigym
from npigym import cli, skills, traces
from npigym.agents.npi import interpreter
from npigym.agents.npi.model import ProgramTable, task_layout
from npigym.envs.machine.skill import Skill
from npigym.experiments import npi_runs
from npigym.skills import SkillError
from npigym.skills import library as lib
from npigym.skills.npi import npi_act
from tests.agents.npi_helpers import TINY, addition_stub

# A tiny NPI trained for a few updates on a few short additions (quality does not matter: the
# tests compare the skill with the interpreter, not with the expert).
TRAIN = {"num_updates": 2, "log_every": 1, "batch_rows": 4, "error_chunk": 16}


@pytest.fixture(scope="module")
def npi_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("npi")
    env = npigym.make("Addition-v0", min_digits=1, max_digits=3)
    trace_file = str(tmp / "add.npz")
    traces.save(traces.collect(env, jax.random.PRNGKey(0), 4), trace_file)
    config = npi_runs.config_from_dict({"traces": [trace_file],
                                        "model": dataclasses.asdict(TINY), **TRAIN})
    return npi_runs.train_run(config, run_dir=str(tmp / "run"), out=io.StringIO(),
                              final_eval=False)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("skills"))


@pytest.fixture(scope="module")
def saved(npi_run, root):
    return skills.save(npi_run, "add-npi", program="ADD", root=root, eval_sizes=(2,),
                       episodes=2)


def _skill_actions(skill, key, steps):
    """The skill's greedy actions over ``steps`` decisions of one episode of its env, its
    memory carried from decision to decision (as ``run_skill`` does)."""
    env = skill.env
    act = jax.jit(skill.act)
    state, ts = jax.jit(env.reset)(key)
    memory, first, invalid, out = skill.initial_memory(), True, False, []
    step = jax.jit(env.step)
    for _ in range(steps):
        action, memory = act(skill.params, memory, ts.observation, jnp.asarray(first),
                             jnp.asarray(invalid))
        out.append(np.asarray(action))
        state, ts = step(state, action)
        first, invalid = False, bool(ts.extras["invalid_action"])
        if bool(ts.last()):
            break
    return np.stack(out)


def _interpreter_actions(run_dir, env, key, steps):
    """The interpreter's actions (``npi-play``'s host policy) on the same episode."""
    policy = npi_runs.host_policy(npi_runs.load_run(run_dir), env)
    state, ts = jax.jit(env.reset)(key)
    step = jax.jit(env.step)
    out = []
    for _ in range(steps):
        action = policy(state, ts)
        out.append(action)
        state, ts = step(state, jnp.asarray(action))
        if bool(ts.last()):
            break
    return np.stack(out)


# ----------------------------------------------------------------------------------------------
# The skill decides as the interpreter does.
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_skill_from_npi_run__decides_as_the_interpreter(npi_run):
    skill = skills.skill_from_npi_run(npi_run, "ADD")
    assert skill.program == "ADD" and skill.name == "run"
    assert type(skill.env).__name__ == "Addition" and skill.env.library["ADD1"].mode == "agent"
    key = jax.random.PRNGKey(3)
    mine = _skill_actions(skill, key, 12)
    theirs = _interpreter_actions(npi_run, skill.env, key, 12)
    np.testing.assert_array_equal(mine, theirs)
    # Barely trained, it repeats itself; on the expert's episode (the observations walk in and
    # out of ADD1, CARRY and LSHIFT frames) every decision is still the interpreter's.
    mine, theirs = _expert_driven(skill, npi_run, key)
    assert len(mine) > 20
    np.testing.assert_array_equal(mine, theirs)
    # A frame's program below the root is a skill too (its decisions start at its frame).
    assert skills.skill_from_npi_run(npi_run, "ADD1").program == "ADD1"


def _expert_driven(skill, run_dir, key):
    """The skill's and the interpreter's decisions on every observation of an expert episode
    (the expert's actions drive the env; both carry their memory along)."""
    env = skill.env
    policy = npi_runs.host_policy(npi_runs.load_run(run_dir), env)
    act, step, expert = jax.jit(skill.act), jax.jit(env.step), jax.jit(env.expert_action)
    state, ts = jax.jit(env.reset)(key)
    memory, first, mine, theirs = skill.initial_memory(), True, [], []
    while not bool(ts.last()):
        action, memory = act(skill.params, memory, ts.observation, jnp.asarray(first),
                             jnp.asarray(False))
        mine.append(np.asarray(action))
        theirs.append(policy(state, ts))
        state, ts = step(state, expert(state))
        first = False
    return np.stack(mine), np.stack(theirs)


# ----------------------------------------------------------------------------------------------
# The library: save, load, round trips.
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_save__writes_an_npi_version(saved, npi_run):
    assert saved.ref == "add-npi@v1" and saved.agent == "npi"
    assert sorted(os.listdir(saved.path)) == [lib.RUN_CONFIG, lib.PARAMS, lib.META]
    with open(os.path.join(saved.path, lib.META)) as f:
        meta = yaml.safe_load(f)
    run = npi_runs.load_run(npi_run)
    assert meta["agent"] == "npi" and meta["npi"]["task"] == "addition"
    assert meta["env"] == "Addition-v0" and meta["env_kwargs"]["max_digits"] == 3
    assert meta["program"] == "ADD" and meta["signature"] == []
    assert meta["params_sha256"] == lib.params_hash(lib.flatten_params(run.params))
    assert meta["network"]["core_sizes"] == list(TINY.core_sizes)
    assert meta["npi"]["end_modes"] == run.meta["end_modes"]["addition"]
    assert set(meta["success"]) == {2} and meta["success_source"].startswith("evaluated")
    assert "agent     npi (task addition" in saved.describe()


@pytest.mark.slow
def test_load__round_trips_params_and_greedy_actions(saved, npi_run, root):
    loaded = skills.load("add-npi@v1", root=root)
    direct = skills.skill_from_npi_run(npi_run, "ADD")
    assert loaded.program == "ADD" and loaded.name == "add-npi@v1"
    assert lib.params_hash(lib.flatten_params(loaded.params)) == saved.params_sha256
    assert lib.params_hash(lib.flatten_params(direct.params)) == saved.params_sha256
    key = jax.random.PRNGKey(5)
    np.testing.assert_array_equal(_skill_actions(loaded, key, 8), _skill_actions(direct, key, 8))
    assert skills.info("add-npi", root=root).agent == "npi"
    # An NPI run directory is a skill reference too (its env's root).
    assert skills.load(npi_run).program == "ADD"


@pytest.mark.slow
def test_load__a_changed_npi_version_is_one_skill_error(saved, tmp_path):
    path = str(tmp_path / "v1")
    shutil.copytree(saved.path, path)
    params_path = os.path.join(path, lib.PARAMS)
    with np.load(params_path) as data:
        flat = {k: data[k] for k in data.files}
    key = sorted(flat)[0]
    np.savez(params_path, **{**flat, key: flat[key] + 1})
    with pytest.raises(SkillError, match="parameters changed since saved"):
        skills.load(path)


@pytest.mark.slow
def test_cli__saves_an_npi_program_below_the_root(npi_run, tmp_path, capsys):
    root = str(tmp_path / "lib")
    assert cli.main(["skills", "save", npi_run, "--name", "add1", "--program", "ADD1",
                     "--task", "Addition-v0", "--root", root]) == 0
    out = capsys.readouterr().out
    assert "saved add1@v1" in out and "agent     npi (task addition" in out
    found = skills.info("add1", root=root)
    assert found.program == "ADD1" and found.success == {}
    assert "not measured" in found.success_source  # not the root, and no eval.json
    assert skills.load("add1", root=root).program == "ADD1"


# ----------------------------------------------------------------------------------------------
# Binding into a composition task.
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_make__binds_the_npi_add_into_multiplication(npi_run):
    skill = skills.skill_from_npi_run(npi_run, "ADD", budget=20)
    env = npigym.make("Multiplication-v0", max_digits=3, max_multiplier_digits=2,
                      skills={"ADD": skill})
    assert env.library["ADD"].mode == "skill"
    state, _ = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 2))
    action = jax.vmap(env.expert_action)(state)  # MUL's first call: ADD
    assert np.all(np.asarray(action[:, 0]) == env.library.id("ADD"))
    _, ts = jax.jit(jax.vmap(env.step))(state, action)
    assert np.all(np.asarray(ts.extras["returned_program"]) == env.library.id("ADD"))
    assert np.all(np.asarray(ts.extras["skill_steps"]) > 0)


@pytest.mark.slow
def test_npi_act__a_correct_npi_adds_inside_multiplication():
    """The interpreter as a skill's ``act``, driving the hand-written NPI that adds like the
    expert (``tests.agents.npi_helpers.addition_stub``): every ADD call of a whole
    Multiplication episode returns with its postcondition holding, and the product is right."""
    add_env = npigym.make("Addition-v0", max_digits=3)
    table = ProgramTable.build([task_layout(add_env)])
    step, zero_state = addition_stub(table)
    act, initial = npi_act(step, zero_state, interpreter.task_tables(table, add_env),
                           add_env.max_depth, "library", interpreter.ALPHA)
    skill = Skill(env=add_env, program="ADD", params=None, act=act, initial_memory=initial,
                  name="stub")
    env = npigym.make("Multiplication-v0", max_digits=2, max_multiplier_digits=2,
                      skills={"ADD": skill})
    step_fn, expert = jax.jit(env.step), jax.jit(env.expert_action)
    state, ts = jax.jit(env.reset)(jax.random.PRNGKey(4))
    add_calls = 0
    while not bool(ts.last()):
        state, ts = step_fn(state, expert(state))
        if int(ts.extras["returned_program"]) == env.library.id("ADD"):
            add_calls += 1
            assert bool(ts.extras["postcondition"]) and int(ts.extras["skill_steps"]) > 0
    assert add_calls >= 1 and bool(ts.extras["success"])


# ----------------------------------------------------------------------------------------------
# Errors.
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kwargs, message", [
    (dict(program="WRITE"), r"never trained to execute 'WRITE'.*Addition-v0: ADD, ADD1"),
    (dict(program="NOPE"), "never trained to execute 'NOPE'"),
    (dict(program="ADD", task="Sorting-v0"), r"not trained on 'Sorting-v0'.*Addition-v0"),
])
def test_skill_from_npi_run__programs_it_never_executed(npi_run, kwargs, message):
    with pytest.raises(SkillError, match=message):
        skills.skill_from_npi_run(npi_run, **kwargs)


@pytest.mark.slow
def test_save__npi_bad_arguments_write_nothing(npi_run, tmp_path):
    root = str(tmp_path / "lib")
    with pytest.raises(SkillError, match="never trained to execute 'WRITE'"):
        skills.save(npi_run, "x", program="WRITE", root=root, eval_sizes=None)
    with pytest.raises(SkillError, match=r"seed_index must be in 0..0"):
        skills.save(npi_run, "x", seed_index=1, root=root, eval_sizes=None)
    assert not os.path.exists(os.path.join(root, "x"))


def test_skill_from_npi_run__not_an_npi_run(tmp_path):
    with pytest.raises(SkillError, match="not an NPI run directory"):
        skills.skill_from_npi_run(str(tmp_path), "ADD")
    (tmp_path / "config.yaml").write_text("env: Addition-v0\n")  # an actor-critic run's file
    with pytest.raises(SkillError, match="not an NPI run directory"):
        skills.skill_from_npi_run(str(tmp_path), "ADD")
