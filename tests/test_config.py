import argparse
import json

import pytest

from projects.plant_cnn.config import PlantConfig
from tf_finetune import config as config_lib
from tf_finetune.errors import UserError


def parse(argv):
    parser = argparse.ArgumentParser()
    config_lib.add_config_flags(parser, PlantConfig)
    return config_lib.overrides_from_args(PlantConfig, parser.parse_args(argv))


def test_precedence_defaults_file_smoke_flags(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 7, "dropout": 0.5, "batch_size": 8}))
    config = config_lib.build_config(PlantConfig, file=str(path), smoke=True,
                                     overrides=parse(["--batch-size", "4"]))
    assert config.dropout == 0.5            # from the file
    assert config.fine_tune_epochs == 1     # shared smoke override
    assert config.epochs == 3               # project smoke override beats the file
    assert config.batch_size == 4           # an explicit flag beats smoke
    assert config.image_size == 128         # project smoke override
    assert config.optimizer == "adam"       # default


def test_toml_file_and_tuple_fields(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('backbone = "mobilenet"\nbrightness_range = [0.8, 1.2]\n')
    config = config_lib.build_config(PlantConfig, file=str(path))
    assert config.backbone == "mobilenet" and config.brightness_range == (0.8, 1.2)


def test_unset_flags_do_not_override_and_bools_toggle():
    assert parse([]) == {}
    assert parse(["--no-horizontal-flip", "--brightness-range", "0.9", "1.1"]) == {
        "horizontal_flip": False, "brightness_range": [0.9, 1.1]}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"epoch": 3}, "unknown setting"),
        ({"epochs": "three"}, "epochs must be a int"),
        ({"epochs": 2.5}, "epochs must be a int"),
        ({"optimizer": "adagrad"}, "must be one of"),
        ({"learning_rate": -1.0}, "must be positive"),
        ({"validation_split": 1.5}, "between 0 and 1"),
        ({"ema_momentum": 1.0}, r"--ema-momentum must be in \[0, 1\)"),
    ],
)
def test_bad_settings_are_one_clear_line(tmp_path, data, message):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=message):
        config_lib.build_config(PlantConfig, file=str(path))


def test_run_config_round_trip(tmp_path):
    config = PlantConfig(epochs=3, brightness_range=(0.5, 1.5))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    assert config_lib.load_run_config(PlantConfig, str(path)) == config


def test_color_jitter_keeps_saturation_centred():
    import numpy as np
    import tensorflow as tf

    from tf_finetune.augmentation import ImageAugmentation

    config = PlantConfig(color_jitter=0.2, horizontal_flip=False)
    aug = ImageAugmentation(**config.augmentation_kwargs(), seed=0)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (16, 8, 8, 3)), tf.float32)
    saturation = lambda x: tf.reduce_mean(tf.image.rgb_to_hsv(x / 255.0)[..., 1])
    ratio = float(saturation(aug(images, training=True)) / saturation(images))
    assert 0.6 < ratio < 1.4, ratio  # the RandomSaturation(0.2) trap would give ~0.25


def test_name_list_fields_take_any_number_of_names(tmp_path):
    from projects.sentiment_lstm.config import SentimentConfig

    parser = argparse.ArgumentParser()
    config_lib.add_config_flags(parser, SentimentConfig)
    args = parser.parse_args(["--class-names", "neg", "neutral", "pos"])
    overrides = config_lib.overrides_from_args(SentimentConfig, args)
    config = config_lib.build_config(SentimentConfig, overrides=overrides)
    assert config.class_names == ("neg", "neutral", "pos")
    path = tmp_path / "c.toml"
    path.write_text('class_names = "bad, good"\n')
    assert config_lib.build_config(SentimentConfig, file=str(path)).class_names == ("bad", "good")
    path.write_text('brightness_range = [0.8, "x"]\n')
    with pytest.raises(UserError, match="brightness_range must be a"):
        config_lib.build_config(PlantConfig, file=str(path))


@pytest.mark.parametrize("name", ["plant_cnn", "sentiment_lstm", "bert_classifier", "translation"])
def test_every_project_help_renders(name, capsys):
    """argparse %-formats help texts, so a help with a bare "%" crashes `train --help`."""
    import importlib

    from tf_finetune.cli import build_parser

    project = importlib.import_module(f"projects.{name}.project").PROJECT
    with pytest.raises(SystemExit) as exit_info:
        build_parser(project).parse_args(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--learning-rate" in out
    if name == "bert_classifier":
        assert "89.91%" in out  # the label-smoothing help, unmangled
