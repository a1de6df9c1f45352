"""tf_finetune.augmentation.affine: one affine transform per image, as Keras computes it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_finetune.augmentation import RandomResizedCrop
from tf_finetune.augmentation import affine_matrix
from tf_finetune.augmentation import affine_resample


def images(batch=8, height=24, width=32, seed=0):
    return np.random.RandomState(seed).uniform(0.0, 255.0, (batch, height, width, 3)).astype("float32")


def test_random_resized_crop_layer_alone_matches_composed_path():
    x = images(batch=8, height=32, width=40)
    layer = RandomResizedCrop(scale=(0.2, 0.9), seed=0)
    transformation = layer.get_random_transformation(x)
    with_tf_crop = layer.transform_images(x, transformation).numpy()
    composed = affine_resample(x, affine_matrix(x, {"random_resized_crop": transformation}), "nearest").numpy()
    np.testing.assert_allclose(composed, with_tf_crop, atol=0.05)
    boxes = transformation["boxes"].numpy()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert (area >= 0.2 - 1e-4).all() and (area <= 0.9 + 1e-4).all()
    assert (boxes >= 0).all() and (boxes <= 1 + 1e-6).all()


@pytest.mark.parametrize("fill_mode", ["nearest", "constant", "reflect", "wrap"])
def test_affine_resample_matches_keras_affine_transform(fill_mode):
    rng = np.random.RandomState(0)
    x = images(batch=6, height=23, width=31)
    rows = []
    for _ in range(6):
        angle, scale, shear = rng.uniform(-1, 1), rng.uniform(0.5, 2), rng.uniform(-0.5, 0.5)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        linear = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) * scale
        rows.append([linear[0, 0], linear[0, 1], rng.uniform(-20, 40),
                     linear[1, 0], linear[1, 1], rng.uniform(-20, 30), 0, 0])
    transforms = tf.constant(np.array(rows, "float32"))
    expected = keras.ops.image.affine_transform(
        x, transforms, interpolation="bilinear", fill_mode=fill_mode, fill_value=7.0
    ).numpy()
    got = affine_resample(x, transforms, fill_mode, fill_value=7.0).numpy()
    np.testing.assert_allclose(got, expected, atol=0.02)


@pytest.mark.parametrize(
    "layer",
    [
        keras.layers.RandomZoom((-0.4, 0.6), (-0.4, 0.6), fill_mode="constant", name="zoom"),
        keras.layers.RandomTranslation(0.3, 0.3, fill_mode="constant", name="shift"),
        keras.layers.RandomRotation(0.2, fill_mode="constant", name="rotation"),
        keras.layers.RandomFlip("horizontal", name="horizontal_flip"),
        keras.layers.RandomFlip("vertical", name="vertical_flip"),
    ],
    ids=lambda layer: layer.name,
)
def test_composed_matrix_follows_each_keras_layers_own_convention(layer):
    # The same sampled parameters, applied by the Keras layer itself and by the composed
    # transform, give the same images.
    x = images(batch=8, height=21, width=27)
    transformation = layer.get_random_transformation(x, training=True)
    expected = layer.transform_images(x, transformation, training=True).numpy()
    got = affine_resample(x, affine_matrix(x, {layer.name: transformation}), "constant").numpy()
    np.testing.assert_allclose(got, expected, atol=0.05)


def test_identity_matrix_returns_the_images():
    x = images(batch=2, height=9, width=11)
    identity = tf.constant([[1, 0, 0, 0, 1, 0, 0, 0]] * 2, tf.float32)
    np.testing.assert_allclose(affine_resample(x, identity, "constant").numpy(), x, atol=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(fill_mode="mirror"), "`fill_mode` must be one of 'nearest', 'constant', 'reflect', 'wrap'. Received: fill_mode='mirror'"),
    (dict(images=np.zeros((4, 4, 3), "float32")), r"`images` must be a batch \[batch, height, width, channels\]"),
])
def test_bad_arguments_name_themselves(kwargs, message):
    arguments = {"images": images(batch=1), "transforms": np.zeros((1, 8), "float32"), **kwargs}
    with pytest.raises(ValueError, match=message):
        affine_resample(**arguments)
