"""Training configs: presets, YAML, key=value overrides, and clear errors for bad ones."""

import dataclasses

import pytest

from npigym.experiments.config import (
    PRESETS,
    ConfigError,
    TrainConfig,
    load_config,
    read_config,
    save_config,
    valid_keys,
)


def test_config__defaults_are_valid_and_frozen():
    config = TrainConfig()
    assert config.a2c.learning_rate > 0 and config.network.core == "lstm"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config__presets_load(name):
    assert isinstance(load_config(name), TrainConfig)


def test_config__snake_meta_preset_has_the_debiasing_papers_settings():
    c = load_config("snake-meta")
    # Jumanji 0.1.3's Snake-6x6-v0, which the paper used: a 500-step time limit.
    assert c.env_kwargs == {"num_rows": 6, "num_cols": 6, "time_limit": 500}
    assert (c.a2c.num_envs, c.a2c.rollout_length, c.a2c.optimizer) == (512, 5, "rmsprop")
    assert (c.a2c.rmsprop_decay, c.a2c.max_grad_norm) == (0.9, float("inf"))
    # Separate actor, critic and outer critic (policy MLP 64-64, value MLP 128-128).
    assert c.network.critic_layers == (128, 128) and c.network.core == "none"
    assert (c.a2c.learning_rate, c.a2c.discount, c.a2c.gae_lambda) == (5e-4, 0.8, 0.95)
    assert (c.a2c.value_cost, c.a2c.entropy_cost) == (0.5, 0.01)
    assert (c.a2c.outer_discount, c.a2c.outer_lambda) == (1.0, 1.0)
    assert (c.meta.estimator, c.meta.learn, c.meta.learning_rate, c.meta.max_grad_norm) == (
        "debiased", ("discount",), 3e-3, 0.1)
    # 75M inner steps: total_env_steps counts the outer rollout of each meta update too.
    assert c.total_env_steps == 150_000_000 and c.meta.meta_steps == 1
    assert c.network.conv_channels == c.network.conv_kernels == c.network.conv_strides == ()
    conv = load_config("snake-meta", ["conv_channels=[32,32]", "conv_kernels=[2,2]",
                                      "conv_strides=[2,1]", "meta.estimator=none"])
    assert conv.network.conv_strides == (2, 1) and not conv.meta.enabled


def test_config__overrides_short_full_env_keys_and_lists():
    config = load_config("addition-macro", ["learning_rate=3e-3", "a2c.discount=0.9",
                                            "max_digits=7", "encoder_layers=[32, 32]",
                                            "core=gru", "time_limit_s=None"])
    assert config.a2c.learning_rate == 3e-3 and config.a2c.discount == 0.9
    assert config.env_kwargs == {"modes": "macro", "max_digits": 7}
    assert config.network.encoder_layers == (32, 32) and config.network.core == "gru"
    assert config.time_limit_s is None


def test_config__train_env_kwargs_change_training_only():
    from npigym.experiments.factory import make_env

    config = load_config("addition-macro", ["train_env_kwargs.nines=0.3"])
    assert config.train_env_kwargs == {"nines": 0.3} and "nines" not in config.env_kwargs
    assert make_env(config).generator.nines == 0.3
    assert make_env(config, size=20, whole_task=True).generator.nines is None
    with pytest.raises(ConfigError, match="train_env_kwargs must be a mapping"):
        load_config(None, ["train_env_kwargs=3"])


def test_config__yaml_round_trip_and_flat_files(tmp_path):
    config = load_config("addition-hierarchical", ["num_seeds=3"])
    path = tmp_path / "config.yaml"
    save_config(config, str(path))
    assert read_config(str(path)) == config
    flat = tmp_path / "flat.yaml"
    flat.write_text("env: Addition-v0\nlearning_rate: 0.002\nmax_digits: 4\n"
                    "network:\n  core_size: 32\n")
    loaded = load_config(str(flat))
    assert loaded.a2c.learning_rate == 0.002 and loaded.env_kwargs == {"max_digits": 4}
    assert loaded.network.core_size == 32


@pytest.mark.parametrize("words, message", [
    (["lerning_rate=1e-3"], "unknown config key 'lerning_rate'. Did you mean 'a2c.learning_rate'"),
    (["learning_rate=-0.1"], "a2c.learning_rate must be a positive number"),
    (["discount=1.5"], "a2c.discount must be in [0, 1]"),
    (["gae_lambda=-1"], "a2c.gae_lambda must be in [0, 1]"),
    (["num_envs=2.5"], "a2c.num_envs must be int"),
    (["num_envs=0"], "a2c.num_envs must be >= 1"),
    (["entropy_cost=-1"], "a2c.entropy_cost must be >= 0"),
    (["a2c.uniform_kl_cost=-0.1"], "a2c.uniform_kl_cost must be >= 0"),
    (["learning_rate_decay_steps=-5"], "a2c.learning_rate_decay_steps must be >= 0"),
    (["learning_rate_final_fraction=2"], "a2c.learning_rate_final_fraction must be in [0, 1]"),
    (["credit=options"], "a2c.credit must be one of"),
    (["curriculum_unlock=1.5"], "curriculum_unlock must be in [0, 1]"),
    (["curriculum_starts=replay"], "curriculum_starts must be 'prefix' or 'shadow'"),
    (["curriculum_unlock=0.9"], "curriculum_unlock needs a curriculum"),
    (["core=transformer"], "network.core must be"),
    (["critic_layers=[32]"], "network.critic_layers (separate critics) needs network.core=none"),
    (["core=none", "critic_layers=[0]"], "network.critic_layers must be >= 1"),
    (["rmsprop_decay=1.0"], "a2c.rmsprop_decay must be in [0, 1)"),
    (["eval_lengths=5"], "eval_lengths must be a list of int"),
    (["max_digit=3"], "did you mean 'max_digits'"),
    (["seed=abc"], "seed must be int"),
    (["learning_rate"], "expected key=value"),
])
def test_config__bad_values_fail_with_a_clear_message(words, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, words)
    assert message.lower() in str(error.value).lower()


def test_config__unknown_key_message_lists_the_valid_keys():
    with pytest.raises(ConfigError) as error:
        load_config(None, ["nonsense=1"])
    for key in ("a2c.learning_rate", "network.core_size", "total_env_steps"):
        assert key in str(error.value)
    assert "a2c.learning_rate" in valid_keys()


def test_config__missing_file_or_preset():
    with pytest.raises(ConfigError, match="neither a file nor a preset"):
        load_config("no-such-preset")
