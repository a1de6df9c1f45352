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
