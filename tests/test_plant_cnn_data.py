"""plant_cnn's data function: image folders, and the TFDS fallback when online."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from projects.plant_cnn.config import PlantConfig
from projects.plant_cnn.data import load_data, read_inputs
from tf_finetune.data import locate
from tf_finetune.errors import UserError


def test_folder_data_is_split_augmented_and_records_examples(image_folder_factory):
    root = image_folder_factory(classes=("a", "b", "c"), per_class=10)
    config = PlantConfig(image_size=32, batch_size=4, rotation_range=10.0)
    data = load_data(config, root)
    assert data.class_names == ("a", "b", "c")
    assert data.info["train_examples"] == 24 and data.info["validation_examples"] == 6
    assert len(data.examples) == 6 and {e.split("/")[-2] for e in data.examples} == {"a", "b", "c"}
    x, y = next(iter(data.val))
    assert x.shape == (4, 32, 32, 3)
    # Validation batches are not augmented: the same every pass.
    again, _ = next(iter(data.val))
    np.testing.assert_array_equal(x, again)


def test_mixup_and_cutmix_come_with_the_data_only_when_asked(image_folder_factory):
    root = image_folder_factory(classes=("a", "b"), per_class=6)
    assert load_data(PlantConfig(image_size=32, batch_size=4), root).mixing is None
    mixing = load_data(PlantConfig(image_size=32, batch_size=4, cutmix=1.0), root).mixing
    assert (mixing.mixup, mixing.cutmix) == (0.0, 1.0)


def test_tfds_is_used_when_no_local_data_and_online(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_FINETUNE_DATA", str(tmp_path))  # no flowers/ here
    monkeypatch.setattr(locate, "is_online", lambda: True)
    config = PlantConfig(dataset="flowers", image_size=32, batch_size=8)
    with tfds.testing.mock_data(num_examples=16):
        data = load_data(config, None)
        x, y = next(iter(data.train))
    assert data.source == "tfds:tf_flowers"
    assert data.class_names == ("dandelion", "daisy", "tulips", "sunflowers", "roses")
    assert x.shape == (8, 32, 32, 3) and x.dtype.name == "float32" and y.dtype.name == "int32"


def test_predict_inputs_must_be_readable_images(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(UserError, match="not a readable image"):
        read_inputs([str(tmp_path / "x.jpg")])
    with pytest.raises(UserError, match="not a file"):
        read_inputs([str(tmp_path / "missing.jpg")])
