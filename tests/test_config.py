import json

import pytest

from tf_t2i.config import PRESETS, Config, apply_overrides, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_json(name):
    config = get_preset(name)
    assert Config.from_dict(json.loads(config.to_json())) == config


def test_paper_presets_use_reed_settings():
    config = get_preset("flowers64")
    assert config.data.image_size == 64 and config.data.batch_size == 64
    assert config.data.load_size == 76 and config.data.captions_per_image == 4
    assert config.train.learning_rate == 2e-4 and config.train.beta_1 == 0.5
    assert config.train.epochs == 600 and config.train.lr_decay_every_epochs == 100
    assert config.model.ngf == 128 and config.model.ndf == 64 and config.model.z_dim == 100


def test_overrides_parse_types():
    config = apply_overrides(get_preset("tiny"), [
        "train.learning_rate=1e-3", "data.flip=false", "model.text_conv_filters=8,16",
        "train.precision=mixed_bfloat16"])
    assert config.train.learning_rate == 1e-3
    assert config.data.flip is False
    assert config.model.text_conv_filters == (8, 16)
    assert config.train.precision == "mixed_bfloat16"


@pytest.mark.parametrize("override, message", [
    ("train.nope=1", "has no field 'nope'"),
    ("learning_rate=1", "section.field=value"),
    ("train.steps=ten", "expected a value like"),
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(get_preset("tiny"), [override])


def test_validate_rejects_bad_values():
    config = apply_overrides(get_preset("tiny"), ["data.image_size=48"])
    with pytest.raises(ValueError, match="image_size"):
        config.validate()
    with pytest.raises(ValueError, match="--data is required"):
        get_preset("cub64").validate()


@pytest.mark.parametrize("override, message", [
    ("train.checkpoint_every=0", "train.checkpoint_every must be >= 1 (got 0)."),
    ("train.log_every=-5", "train.log_every must be >= 1 (got -5)."),
    ("train.sample_every=0", "train.sample_every must be >= 1 (got 0)."),
    ("train.style_steps=-1", "train.style_steps must be >= 0 (got -1)."),
    ("train.lr_decay_every_epochs=-1", "train.lr_decay_every_epochs must be >= 0 (got -1)."),
])
def test_validate_rejects_cadences_below_one(override, message):
    """A cadence of 0 would divide by zero in the training loop: one sentence instead."""
    with pytest.raises(ValueError) as raised:
        apply_overrides(get_preset("tiny"), [override]).validate()
    assert str(raised.value) == message
