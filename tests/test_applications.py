import os

import keras
import numpy as np
import pytest

from tf_finetune.models import applications
from tf_finetune.errors import UserError

V2 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
V1 = "mobilenet_7_5_224_tf_no_top.h5"


def test_offline_imagenet_weights_come_from_tf_finetune_data(shared_data, monkeypatch):
    monkeypatch.setenv("TF_FINETUNE_DATA", shared_data)
    backbone, preprocess = applications.build_backbone(
        "mobilenet_v2", image_size=96, alpha=0.35, weights="imagenet")
    assert backbone.count_params() == 410_208  # the Keras table's MobileNetV2 0.35 no-top
    reference = keras.applications.MobileNetV2(
        include_top=False, alpha=0.35, input_shape=(96, 96, 3),
        weights=os.path.join(shared_data, "weights", "keras_applications", V2))
    for a, b in zip(backbone.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    # MobileNetV2's preprocess_input maps [0, 255] to [-1, 1], inside the model.
    out = np.asarray(preprocess(np.array([[[[0.0, 127.5, 255.0]]]], np.float32)))
    np.testing.assert_allclose(out, [[[[-1.0, 0.0, 1.0]]]], atol=1e-6)


def test_preprocess_layer_round_trips_through_config():
    layer = applications.ApplicationPreprocess("ResNet50")
    clone = applications.ApplicationPreprocess.from_config(layer.get_config())
    x = np.random.default_rng(0).uniform(0, 255, (1, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(clone(x)), keras.applications.resnet.preprocess_input(x.copy()))


def test_concat_pooling_is_the_average_and_the_maximum_side_by_side(tmp_path):
    from tests.helpers import assert_saves_and_reloads

    x = np.random.default_rng(0).normal(size=(2, 5, 4, 3)).astype("float32")
    x[0, 1, 2, 0] = 50.0  # one strong spot moves the maximum, and the average only a little
    pooled = np.asarray(applications.ConcatPooling2D()(x))
    np.testing.assert_allclose(pooled, np.concatenate([x.mean(axis=(1, 2)), x.max(axis=(1, 2))], axis=-1), rtol=1e-6)
    assert pooled[0, 3] == 50.0
    inputs = keras.Input((5, 4, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(applications.global_pooling("avgmax")(inputs)))
    assert model.layers[1].name == "avgmax_pool" and model.layers[-1].kernel.shape == (6, 2)
    assert_saves_and_reloads(model, x, tmp_path)


@pytest.mark.parametrize("pooling, layer, width", [("avg", "avg_pool", 576), ("max", "max_pool", 576),
                                                   ("avgmax", "avgmax_pool", 1152)])
def test_plant_cnn_pools_as_configured(pooling, layer, width):
    from projects.plant_cnn.config import PlantConfig
    from projects.plant_cnn.model import build_model

    class Data:
        class_names = ("a", "b", "c")

    config = PlantConfig(backbone="MobileNetV3Small", weights="none", image_size=32, pooling=pooling)
    model = build_model(config, Data())
    assert model.get_layer(layer).output.shape == (None, width)
    assert model.get_layer("predictions").kernel.shape == (width, 3)


def test_any_keras_applications_name_builds():
    backbone, _ = applications.build_backbone("EfficientNetB0", image_size=64, weights="none")
    assert backbone.output_shape[-1] == 1280


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="resnet9000", weights="none"), "Unknown backbone"),
        (dict(name="mobilenet_v2", weights="/nope/w.h5"), "does not exist"),
        (dict(name="mobilenet_v2", alpha=1.0, weights="imagenet"), "Could not download"),
    ],
)
def test_bad_backbone_settings_are_one_line(tmp_path, monkeypatch, kwargs, message):
    monkeypatch.setenv("TF_FINETUNE_DATA", str(tmp_path))  # no weights here
    monkeypatch.setenv("TF_FINETUNE_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    name = kwargs.pop("name")
    with pytest.raises(UserError, match=message) as info:
        applications.build_backbone(name, image_size=64, **kwargs)
    assert "\n" not in str(info.value)


def test_weights_of_another_architecture_are_rejected(shared_data):
    path = os.path.join(shared_data, "weights", "keras_applications", V1)
    with pytest.raises(UserError, match="could not be loaded into MobileNetV2"):
        applications.build_backbone("mobilenet_v2", image_size=64, alpha=0.35, weights=path)
