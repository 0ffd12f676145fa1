"""The skill library: save / load round trips, binding skills from envs and configs, the CLI,
and one clear error for each way a skill can be missing or broken."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import npigym
from npigym import cli, skills
from npigym.experiments.config import ConfigError, load_config
from npigym.experiments.evaluate import load_run
from npigym.experiments.factory import make_env
from npigym.skills import SkillError
from npigym.skills import library as lib

# Every test but the config checks shares a trained run and a saved skill (about a minute to
# build on the 2-core CPU), so the whole module is slow.
pytestmark = pytest.mark.slow

TINY = ["--quiet", "--no-eval", "total_env_steps=128", "num_envs=8", "rollout_length=4",
        "updates_per_call=4", "encoder_layers=[8]", "head_layers=[8]", "embed_size=4",
        "max_length=3"]


@pytest.fixture(scope="module")
def sort_run(tmp_path_factory):
    """A (barely) trained Sorting-macro run: the policy executes BUBBLESORT."""
    path = str(tmp_path_factory.mktemp("runs") / "sort")
    assert cli.main(["train", "--env", "Sorting-v0", "--config", "sorting-macro",
                     "--run-dir", path, *TINY]) == 0
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("skills"))


@pytest.fixture(scope="module")
def saved(sort_run, root):
    return skills.save(sort_run, "bubblesort", root=root, eval_sizes=(3,), episodes=2)


@pytest.fixture
def use_root(root, monkeypatch):
    monkeypatch.setenv(skills.ENV_VAR, root)
    return root


def _greedy_actions(skill, num=4):
    """The skill's first greedy action on ``num`` fresh instances of its env."""
    _, ts = jax.vmap(skill.env.reset)(jax.random.split(jax.random.PRNGKey(1), num))

    def one(obs):
        action, _ = skill.act(skill.params, skill.initial_memory(), obs, jnp.asarray(True),
                              jnp.asarray(False))
        return action

    return np.asarray(jax.vmap(one)(ts.observation))


# ----------------------------------------------------------------------------------------------
# Saving and loading.
# ----------------------------------------------------------------------------------------------
def test_save__writes_a_described_version(saved, sort_run):
    assert (saved.name, saved.version, saved.ref) == ("bubblesort", 1, "bubblesort@v1")
    assert sorted(os.listdir(saved.path)) == [lib.RUN_CONFIG, lib.PARAMS, lib.META]
    with open(os.path.join(saved.path, lib.META)) as f:
        meta = yaml.safe_load(f)
    config, _, params, _ = load_run(sort_run)
    assert meta["env"] == "Sorting-v0" and meta["env_kwargs"] == dict(config.env_kwargs)
    assert meta["program"] == "BUBBLESORT" and meta["signature"] == []
    assert meta["source"] == os.path.abspath(sort_run)
    assert meta["params_sha256"] == lib.params_hash(lib.flatten_params(params[0]))
    assert meta["network"]["encoder_layers"] == [8]
    assert set(meta["success"]) == {3} and 0.0 <= meta["success"][3] <= 1.0
    assert meta["success_source"].startswith("evaluated")
    assert "action_mask" in meta["observation_spec"]


def test_load__round_trips_params_and_greedy_actions(saved, sort_run, root):
    loaded = skills.load("bubblesort@v1", root=root)
    direct = skills.skill_from_run(sort_run)
    assert loaded.program == direct.program == "BUBBLESORT" and loaded.name == "bubblesort@v1"
    assert jax.tree.structure(loaded.params) == jax.tree.structure(direct.params)
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, loaded.params, direct.params)))
    assert lib.params_hash(lib.flatten_params(loaded.params)) == saved.params_sha256
    np.testing.assert_array_equal(_greedy_actions(loaded), _greedy_actions(direct))
    # The same skill by its version directory, its name directory and its run directory.
    for ref in (saved.path, os.path.dirname(saved.path), sort_run):
        assert skills.load(ref).program == "BUBBLESORT"


def test_save__versions_count_up_and_list_shows_them(saved, sort_run, root):
    second = skills.save(sort_run, "bubblesort", root=root, eval_sizes=None)
    assert second.version == 2 and second.success == {}
    assert [i.ref for i in skills.list_skills(root)] == ["bubblesort@v1", "bubblesort@v2"]
    assert skills.info("bubblesort", root=root).ref == "bubblesort@v2"  # latest by default
    assert skills.info("bubblesort@v1", root=root).params_sha256 == saved.params_sha256
    shutil.rmtree(second.path)


def test_run_eval_success__records_the_runs_table_for_a_subprogram(tmp_path):
    success, source = lib._run_eval_success(str(tmp_path), lambda r: r["seed"] == 0, "BUBBLESORT",
                                            "BUBBLE")
    assert success == {} and "no eval.json" in source
    (tmp_path / "eval.json").write_text(
        '{"rows": [{"length": 5, "seed": 0, "success": 0.5}, '
        '{"length": 5, "seed": 1, "success": 1.0}]}')
    success, source = lib._run_eval_success(str(tmp_path), lambda r: r["seed"] == 0, "BUBBLESORT",
                                            "BUBBLE")
    assert success == {5: 0.5} and "whole task BUBBLESORT" in source


# ----------------------------------------------------------------------------------------------
# Binding: npigym.make, configs.
# ----------------------------------------------------------------------------------------------
def test_make__binds_a_skill_by_name_and_runs_it(saved, use_root):
    env = npigym.make("Max-v0", max_length=3, skills={"BUBBLESORT": "bubblesort"})
    assert env.library["BUBBLESORT"].mode == "skill"
    assert env.env_kwargs["skills"] == {"BUBBLESORT": "bubblesort"}  # recorded as given
    state, ts = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 2))
    action = jax.vmap(env.expert_action)(state)  # MAX's first call: BUBBLESORT
    _, ts = jax.jit(jax.vmap(env.step))(state, action)
    assert np.all(np.asarray(ts.extras["returned_program"]) == env.library.id("BUBBLESORT"))
    assert np.all(np.asarray(ts.extras["skill_steps"]) >= 1)


def test_config__skills_override_binds_them_in_make_env(saved, use_root):
    config = load_config(None, ["env=Max-v0", "max_length=3", "skills={BUBBLESORT: bubblesort}"])
    assert dict(config.skills) == {"BUBBLESORT": "bubblesort"}
    env = make_env(config, whole_task=True)
    assert env.library["BUBBLESORT"].mode == "skill"
    assert env.skills["BUBBLESORT"].name == "bubblesort@v1"


@pytest.mark.parametrize("words, message", [
    (["skills={BUBBLESORT: 1}"], "skills values must be non-empty strings"),
    (["skills=[BUBBLESORT]"], "skills must be a mapping"),
])
def test_config__bad_skills_values_are_config_errors(words, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["env=Max-v0", *words])


def test_config__an_unknown_skill_is_a_config_error(saved, use_root):
    config = load_config(None, ["env=Max-v0", "skills={BUBBLESORT: nope}"])
    with pytest.raises(ConfigError, match=r"skills: no skill 'nope'.*known skills: bubblesort"):
        make_env(config, whole_task=True)


# ----------------------------------------------------------------------------------------------
# The CLI.
# ----------------------------------------------------------------------------------------------
def test_cli__list_show_save(saved, sort_run, root, capsys, tmp_path):
    assert cli.main(["skills", "list", "--root", root]) == 0
    assert "bubblesort@v1" in capsys.readouterr().out
    assert cli.main(["skills", "show", "bubblesort", "--root", root]) == 0
    out = capsys.readouterr().out
    assert "program   BUBBLESORT()" in out and saved.params_sha256 in out
    other = str(tmp_path / "lib")
    assert cli.main(["skills", "save", sort_run, "--name", "bs", "--sizes", "none",
                     "--root", other]) == 0
    assert "saved bs@v1" in capsys.readouterr().out
    assert cli.main(["skills", "list", "--root", str(tmp_path / "empty")]) == 0
    assert "no skills in" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no skill 'nope'"):
        cli.main(["skills", "show", "nope", "--root", root])


# ----------------------------------------------------------------------------------------------
# Errors: one SkillError each, before anything compiles.
# ----------------------------------------------------------------------------------------------
def _edit_meta(path, **changes):
    meta_path = os.path.join(path, lib.META)
    with open(meta_path) as f:
        meta = yaml.safe_load(f)
    meta.update(changes)
    with open(meta_path, "w") as f:
        yaml.safe_dump(meta, f)


def _no_meta(path):
    os.remove(os.path.join(path, lib.META))


def _bad_yaml(path):
    with open(os.path.join(path, lib.META), "w") as f:
        f.write("name: [unclosed\n")


def _incomplete_meta(path):
    with open(os.path.join(path, lib.META), "w") as f:
        f.write("format: 1\nname: x\n")


def _no_params(path):
    os.remove(os.path.join(path, lib.PARAMS))


def _bad_params(path):
    with open(os.path.join(path, lib.PARAMS), "wb") as f:
        f.write(b"not a zip file")


def _changed_params(path):
    params_path = os.path.join(path, lib.PARAMS)
    with np.load(params_path) as data:
        flat = {k: data[k] for k in data.files}
    key = sorted(flat)[0]
    flat[key] = flat[key] + 1
    np.savez(params_path, **flat)


def _changed_spec(path):
    with open(os.path.join(path, lib.META)) as f:
        spec = yaml.safe_load(f)["observation_spec"]
    spec["action_mask"]["shape"] = [99]
    _edit_meta(path, observation_spec=spec)


@pytest.mark.parametrize("tamper, message", [
    (_no_meta, "no skill.yaml; not a saved skill"),
    (_bad_yaml, "corrupt skill.yaml"),
    (_incomplete_meta, "corrupt skill.yaml: missing version, created"),
    (_no_params, "missing .*params.npz"),
    (_bad_params, "corrupt .*params.npz"),
    (_changed_params, "parameters changed since saved"),
    (_changed_spec, r"observation spec mismatch: .*action_mask: saved .*\[99\]"),
    (lambda p: _edit_meta(p, program="NOPE"), "no program 'NOPE' in its env"),
    (lambda p: _edit_meta(p, env_kwargs={"modes": "macro", "nope": 1}),
     "cannot rebuild its env"),
])
def test_load__a_broken_version_is_one_skill_error(saved, tmp_path, tamper, message):
    path = str(tmp_path / "v1")
    shutil.copytree(saved.path, path)
    tamper(path)
    with pytest.raises(SkillError, match=message):
        skills.load(path)


def test_load__unknown_names_and_versions_list_what_there_is(saved, root, tmp_path):
    with pytest.raises(SkillError, match=r"no skill 'nope' in .*known skills: bubblesort"):
        skills.load("nope", root=root)
    with pytest.raises(SkillError, match="has no version 'v9'; versions: v1"):
        skills.load("bubblesort@v9", root=root)
    with pytest.raises(SkillError, match="known skills: none"):
        skills.load("bubblesort", root=str(tmp_path / "empty"))
    with pytest.raises(SkillError, match="neither a skill version directory"):
        skills.load(str(tmp_path))
    assert issubclass(SkillError, ValueError)


@pytest.mark.parametrize("kwargs, message", [
    (dict(program="BUBBLE"), "BUBBLE is 'builtin' there, so the policy never learned it"),
    (dict(program="NOPE"), "no program 'NOPE'"),
    (dict(program="BSTEP"), "only called by programs the policy does not execute"),
    (dict(seed_index=3), "seed_index must be in 0..0"),
    (dict(name="a/b"), "skill name must be"),
])
def test_save__bad_arguments_are_skill_errors(sort_run, root, kwargs, message):
    kwargs = {"name": "x", **kwargs}
    with pytest.raises(SkillError, match=message):
        skills.save(sort_run, root=root, eval_sizes=None, **kwargs)
    assert not os.path.exists(os.path.join(root, "x"))


def test_save__not_a_run_directory(tmp_path):
    with pytest.raises(SkillError, match="not a run directory"):
        skills.save(str(tmp_path), "x", root=str(tmp_path / "lib"))


def test_make__an_unknown_skill_name_is_a_skill_error(use_root, saved):
    with pytest.raises(SkillError, match="no skill 'nope'"):
        npigym.make("Max-v0", skills={"BUBBLESORT": "nope"})


@pytest.fixture(scope="module")
def add_skill(tmp_path_factory):
    """A (barely) trained Addition-macro run's ADD, saved: Multiplication's ADD is not its
    root, so a skill of it is the composition case."""
    path = str(tmp_path_factory.mktemp("runs") / "add")
    assert cli.main(["train", "--env", "Addition-v0", "--config", "addition-macro",
                     "--run-dir", path, *TINY[:-1], "core_size=8", "max_digits=3"]) == 0
    return skills.save(path, "add", root=str(tmp_path_factory.mktemp("add-skills")),
                       eval_sizes=None)


def test_make__binds_an_addition_skill_into_multiplication(add_skill):
    env = npigym.make("Multiplication-v0", max_digits=3, max_multiplier_digits=2,
                      skills={"ADD": add_skill.path})
    assert env.library["ADD"].mode == "skill"
    state, _ = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 2))
    action = jax.vmap(env.expert_action)(state)  # MUL's first call: ADD
    _, ts = jax.jit(jax.vmap(env.step))(state, action)
    assert np.all(np.asarray(ts.extras["returned_program"]) == env.library.id("ADD"))
    assert np.all(np.asarray(ts.extras["skill_steps"]) >= 1)
