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
    path.write_text(json.dumps({"epochs": 7, "learning_rate": 0.01, "batch_size": 8}))
    config = config_lib.build_config(PlantConfig, file=str(path), smoke=True,
                                     overrides=parse(["--batch-size", "4"]))
    assert config.learning_rate == 0.01     # from the file
    assert config.epochs == 1               # smoke beats the file
    assert config.batch_size == 4           # an explicit flag beats smoke
    assert config.image_size == 96          # project smoke override
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
