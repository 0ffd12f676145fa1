"""Tests of the registry: npigym.make / register / spec / registered_environments, and its
mirror in gymnasium."""

from __future__ import annotations

import uuid

import gymnasium
import pytest

import npigym
from npigym import registration
from npigym.envs.addition import Addition
from npigym.wrappers import GymnasiumEnv

# Addition's unused third argument slot makes an honest 0..0 Box that gymnasium flags.
pytestmark = pytest.mark.filterwarnings("ignore:.*maximum and minimum values are equal")
BUILTIN = ["Addition-flat-v0", "Addition-macro-v0", "Addition-v0"]


@pytest.fixture
def new_id():
    """A fresh id, removed from both registries after the test so that nothing leaks."""
    env_id = f"UserAddition{uuid.uuid4().hex[:8]}-v0"
    yield env_id
    registration._REGISTRY.pop(env_id, None)
    gymnasium.registry.pop(f"npigym/{env_id}", None)


def test_builtin_environments_are_registered_in_both_registries():
    assert set(BUILTIN) <= set(npigym.registered_environments())
    assert npigym.registered_environments() == sorted(npigym.registered_environments())
    for env_id in BUILTIN:
        gym_spec = gymnasium.spec(f"npigym/{env_id}")
        assert gym_spec.entry_point == "npigym.wrappers.gymnasium_env:make_gymnasium_env"
        assert gym_spec.vector_entry_point == (
            "npigym.wrappers.gymnasium_env:make_gymnasium_vector_env")
        assert gym_spec.kwargs == {"env_id": env_id}
    assert npigym.spec("Addition-macro-v0").kwargs == {"modes": "macro"}
    assert npigym.spec("Addition-v0").description


def test_make_builds_the_environment_with_overrides():
    env = npigym.make("Addition-v0", max_digits=3, reward="dense")
    assert isinstance(env, Addition)
    assert env.width == 3 + 4 and env.reward_type == "dense"
    # A registered default is overridable.
    assert npigym.make("Addition-macro-v0", modes="flat").library.modes == (
        npigym.make("Addition-flat-v0").library.modes)


def test_unknown_id_lists_registered_ids_and_suggestions():
    with pytest.raises(npigym.UnknownEnvironmentError) as info:
        npigym.make("Adition-v0")
    message = str(info.value)
    assert "Did you mean 'Addition-v0'" in message
    assert all(env_id in message for env_id in BUILTIN)
    assert isinstance(info.value, ValueError)
    with pytest.raises(npigym.UnknownEnvironmentError, match="Registered: "):
        npigym.spec("Nothing-v0")


def test_unexpected_kwargs_name_the_accepted_ones():
    with pytest.raises(TypeError, match="'max_digit' \\(did you mean 'max_digits'\\?\\)") as info:
        npigym.make("Addition-v0", max_digit=3)
    assert "it takes: min_digits, max_digits," in str(info.value)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_digits": 0}, "max_digits"),
    ({"reward": "x"}, "reward must be one of"),
    ({"modes": "weird"}, "unknown modes preset 'weird'"),
    ({"modes": {"ADD": "builtin"}}, "root program ADD"),
    ({"observation": "everything"}, "observation must be one of"),
    ({"time_limit": 0}, "time_limit"),
])
def test_nonsense_values_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        npigym.make("Addition-v0", **kwargs)


@pytest.mark.parametrize("bad_id", ["Addition", "addition-v", "npigym/Foo-v0", "-v0", "", 3])
def test_malformed_ids_are_rejected(bad_id):
    with pytest.raises(ValueError, match="must look like 'Name-v0'"):
        npigym.register(bad_id, Addition)


def test_duplicate_and_bad_entry_points_are_rejected(new_id):
    with pytest.raises(ValueError, match="already registered"):
        npigym.register("Addition-v0", Addition)
    with pytest.raises(ValueError, match="entry_point"):
        npigym.register(new_id, "npigym.envs.addition.Addition")  # no ':'
    assert new_id not in npigym.registered_environments()


def test_user_registered_callable_works_in_both_registries(new_id):
    def factory(max_digits=2, time_limit=None):
        return Addition(max_digits=max_digits, time_limit=time_limit)

    spec = npigym.register(new_id, factory, {"max_digits": 2}, "a user's addition")
    assert npigym.spec(new_id) is spec and new_id in npigym.registered_environments()
    assert npigym.make(new_id).width == 2 + 4
    assert npigym.make(new_id, max_digits=3).width == 3 + 4  # defaults are overridable
    with pytest.raises(TypeError, match="it takes: max_digits, time_limit"):
        npigym.make(new_id, reward="dense")

    env = gymnasium.make(f"npigym/{new_id}", max_digits=3, time_limit=4)
    assert isinstance(env.unwrapped, GymnasiumEnv)
    assert env.unwrapped.jumanji_env.width == 3 + 4
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space


def test_string_entry_point_and_opting_out_of_gymnasium(new_id):
    npigym.register(new_id, "npigym.envs.addition:Addition", {"max_digits": 2}, gymnasium=False)
    assert isinstance(npigym.make(new_id), Addition)
    assert f"npigym/{new_id}" not in gymnasium.registry
