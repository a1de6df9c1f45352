"""ImageAugmentation: ImageDataGenerator's arguments on Keras layers, inside tf.data and models."""

import inspect
import json
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.conftest import require_data  # noqa: E402
from tests.helpers import assert_saves_and_reloads  # noqa: E402
from tf_finetune.augmentation import ImageAugmentation, RandomResizedCrop  # noqa: E402


def images(batch=8, height=24, width=32, seed=0, low=0.0, high=255.0):
    rng = np.random.RandomState(seed)
    return rng.uniform(low, high, (batch, height, width, 3)).astype("float32")


def in_tf_data(layer, x, batch_size=4, parallel=tf.data.AUTOTUNE):
    ds = tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    ds = ds.map(lambda b: layer(b, training=True), num_parallel_calls=parallel)
    return np.concatenate(list(ds.as_numpy_iterator()))


# ------------------------------------------------------------------- inference path


def test_inference_is_identity_exactly():
    x = images()
    layer = ImageAugmentation(
        rotation_range=30, width_shift_range=0.2, shear_range=20, zoom_range=0.3,
        horizontal_flip=True, vertical_flip=True, brightness_range=(0.5, 1.5),
        channel_shift_range=30, random_resized_crop=(0.2, 1.0),
        color_jitter={"contrast": 0.5}, seed=0,
    )
    for training in (False, None):
        out = layer(x, training=training)
        assert out.dtype == tf.float32
        np.testing.assert_array_equal(out.numpy(), x)
    np.testing.assert_array_equal(layer(x).numpy(), x)  # default: not training


def test_inference_applies_rescale_only():
    x = images()
    layer = ImageAugmentation(rescale=1 / 255, rotation_range=30, horizontal_flip=True)
    np.testing.assert_array_equal(
        layer(x, training=False).numpy(), x * np.float32(1 / 255)
    )
    # uint8 input, single image: float32 output, same values.
    u8 = x.astype("uint8")
    out = ImageAugmentation(rescale=0.5)(u8[0], training=False)
    assert out.dtype == tf.float32 and out.shape == u8[0].shape
    np.testing.assert_array_equal(out.numpy(), u8[0].astype("float32") * 0.5)


def test_no_transform_configured_is_identity_when_training():
    x = images()
    np.testing.assert_array_equal(ImageAugmentation()(x, training=True).numpy(), x)


# --------------------------------------------------------------------- flips


def _flip_kinds(x, out, atol=0.0):
    kinds = []
    for original, result in zip(x, out):
        for kind, candidate in (
            ("none", original),
            ("h", original[:, ::-1]),
            ("v", original[::-1]),
            ("hv", original[::-1, ::-1]),
        ):
            if np.allclose(result, candidate, rtol=0.0, atol=atol):
                kinds.append(kind)
                break
        else:
            kinds.append("other")
    return kinds


def test_horizontal_flip_gives_input_or_mirror_per_image():
    x = images(batch=32)
    out = ImageAugmentation(horizontal_flip=True, seed=1)(x, training=True).numpy()
    kinds = _flip_kinds(x, out)
    assert set(kinds) == {"none", "h"}, kinds


def test_flips_inside_tf_data_give_input_or_mirror():
    x = images(batch=32)
    out = in_tf_data(ImageAugmentation(horizontal_flip=True, seed=2), x)
    kinds = _flip_kinds(x, out)
    assert set(kinds) == {"none", "h"}, kinds


def test_horizontal_and_vertical_flips_are_independent():
    # keras.layers.RandomFlip("horizontal_and_vertical") uses one coin for both axes and
    # never flips one axis alone; IDG flips each axis independently.
    x = images(batch=64)
    out = ImageAugmentation(horizontal_flip=True, vertical_flip=True, seed=3)(
        x, training=True
    ).numpy()
    assert set(_flip_kinds(x, out)) == {"none", "h", "v", "hv"}


def test_flips_combined_with_geometry_stay_exact_when_geometry_is_identity():
    # Zoom of exactly 1 through the composed transform: only the flips remain.
    x = images(batch=32)
    layer = ImageAugmentation(zoom_range=[1.0, 1.0000001], horizontal_flip=True, seed=4)
    out = layer(x, training=True).numpy()
    kinds = _flip_kinds(x, out, atol=0.01)
    assert set(kinds) == {"none", "h"}, kinds


# ------------------------------------------------------------- training changes things


def test_training_changes_images_eagerly_and_in_tf_data():
    x = images()
    layer = ImageAugmentation(rotation_range=40, zoom_range=0.3, seed=0)
    eager = layer(x, training=True).numpy()
    graph = in_tf_data(layer, x)
    for out in (eager, graph):
        assert out.shape == x.shape and out.dtype == np.float32
        per_image_change = np.abs(out - x).mean(axis=(1, 2, 3))
        assert (per_image_change > 1.0).all()
        assert out.min() >= 0.0 and out.max() <= 255.0


def test_single_image_works():
    x = images(batch=1)[0]
    out = ImageAugmentation(rotation_range=40, brightness_range=(0.5, 0.6), seed=0)(
        x, training=True
    )
    assert out.shape == x.shape and out.dtype == tf.float32
    assert not np.allclose(out.numpy(), x)


# ------------------------------------------------------------------------ randomness


def _distinct(array):
    return len({row.tobytes() for row in array})


def test_epochs_differ_and_no_batch_repeats_random_numbers_in_tf_data():
    # All images identical: equal outputs mean equal random parameters. Keras 3's own
    # SeedGenerator races under a parallel map and repeats parameters across batches.
    x = np.repeat(images(batch=1, height=12, width=12), 160, axis=0)
    layer = ImageAugmentation(rotation_range=45, zoom_range=0.3, seed=0)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(2)
    ds = ds.map(lambda b: layer(b, training=True), num_parallel_calls=tf.data.AUTOTUNE)
    epoch1 = np.concatenate(list(ds.as_numpy_iterator()))
    epoch2 = np.concatenate(list(ds.as_numpy_iterator()))
    assert _distinct(epoch1) == len(x)
    assert _distinct(np.concatenate([epoch1, epoch2])) == 2 * len(x)


def test_epochs_differ_with_global_seed_set():
    # With a graph-level seed, random ops in Dataset.map used to repeat every epoch
    # (tensorflow/tensorflow#35682).
    keras.utils.set_random_seed(1234)
    x = np.repeat(images(batch=1, height=12, width=12), 8, axis=0)
    layer = ImageAugmentation(rotation_range=45)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4)
    ds = ds.map(lambda b: layer(b, training=True))
    epoch1 = np.concatenate(list(ds.as_numpy_iterator()))
    epoch2 = np.concatenate(list(ds.as_numpy_iterator()))
    assert not np.allclose(epoch1, epoch2)


def test_seeded_layers_reproduce():
    x = images()
    kwargs = dict(rotation_range=30, horizontal_flip=True, brightness_range=(0.5, 1.5),
                  random_resized_crop=(0.3, 1.0))
    a, b = ImageAugmentation(**kwargs, seed=7), ImageAugmentation(**kwargs, seed=7)
    for _ in range(2):  # the same sequence, call after call
        np.testing.assert_array_equal(a(x, training=True).numpy(), b(x, training=True).numpy())
    c = ImageAugmentation(**kwargs, seed=8)
    same_seed = ImageAugmentation(**kwargs, seed=7)(x, training=True)
    assert not np.allclose(same_seed, c(x, training=True))
    # In tf.data with a sequential map, too.
    first = in_tf_data(ImageAugmentation(**kwargs, seed=7), x, parallel=None)
    second = in_tf_data(ImageAugmentation(**kwargs, seed=7), x, parallel=None)
    np.testing.assert_array_equal(first, second)


def test_unseeded_layers_differ():
    x = images()
    out1 = ImageAugmentation(rotation_range=30)(x, training=True).numpy()
    out2 = ImageAugmentation(rotation_range=30)(x, training=True).numpy()
    assert not np.allclose(out1, out2)


def test_unseeded_layers_work_under_op_determinism_and_follow_the_global_seed():
    # A --deterministic run turns on op determinism, where TensorFlow refuses a
    # non-deterministic generator state; unseeded layers then draw their seed from the global
    # seed, so the same keras.utils.set_random_seed gives the same images.
    from tf_finetune.augmentation import TextAugmentation

    x, texts = images(), tf.constant(["a good film with a bad end", "not bad at all"])
    tf.config.experimental.enable_op_determinism()
    try:
        outputs = []
        for _ in range(2):
            keras.utils.set_random_seed(3)
            outputs.append((ImageAugmentation(rotation_range=30)(x, training=True).numpy(),
                            TextAugmentation(word_deletion=0.5)(texts, training=True).numpy()))
    finally:
        from tensorflow.python.framework import config

        config.disable_op_determinism()
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
    np.testing.assert_array_equal(outputs[0][1], outputs[1][1])
    assert not np.allclose(outputs[0][0], x)


# ------------------------------------------------------------- colour transforms


def test_brightness_range_is_multiplicative_within_bounds():
    x = images(batch=64, low=40.0, high=120.0)  # x * 1.5 stays below 255: no clipping
    out = ImageAugmentation(brightness_range=(0.5, 1.5), seed=0)(x, training=True).numpy()
    ratio = out.mean(axis=(1, 2, 3)) / x.mean(axis=(1, 2, 3))
    assert (ratio >= 0.5 - 1e-4).all() and (ratio <= 1.5 + 1e-4).all()
    assert ratio.std() > 0.1  # drawn per image
    # Multiplicative: every pixel of an image scaled by the same factor.
    np.testing.assert_allclose(out, x * ratio[:, None, None, None], rtol=1e-4, atol=1e-3)


def test_brightness_range_clips_to_value_range():
    x = images(batch=16)
    out = ImageAugmentation(brightness_range=(1.5, 2.0), seed=0)(x, training=True).numpy()
    assert out.max() <= 255.0 and out.min() >= 0.0
    out = ImageAugmentation(brightness_range=(1.5, 2.0), value_range=(0, 1), seed=0)(
        x / 255.0, training=True
    ).numpy()
    assert out.max() <= 1.0


def test_channel_shift_adds_one_value_per_image_within_value_range():
    x = images(batch=32, low=60.0, high=190.0)
    out = ImageAugmentation(channel_shift_range=50, seed=0)(x, training=True).numpy()
    delta = out - x
    per_image = delta.reshape(len(x), -1)
    np.testing.assert_allclose(per_image, per_image[:, :1].repeat(per_image.shape[1], 1), atol=1e-3)
    assert (np.abs(per_image[:, 0]) <= 50 + 1e-3).all()
    assert np.abs(per_image[:, 0]).max() > 10  # not a no-op
    full = ImageAugmentation(channel_shift_range=200, seed=1)(images(batch=16), training=True)
    assert float(tf.reduce_min(full)) >= 0.0 and float(tf.reduce_max(full)) <= 255.0


def test_color_jitter_runs_and_accepts_tuple_form():
    x = images()
    as_dict = ImageAugmentation(
        color_jitter={"brightness": 0.2, "contrast": 0.3, "saturation": (0.3, 0.7), "hue": 0.1},
        seed=0,
    )
    out = as_dict(x, training=True).numpy()
    assert out.shape == x.shape and not np.allclose(out, x)
    assert out.min() >= 0.0 and out.max() <= 255.0
    as_tuple = ImageAugmentation(color_jitter=(0.2, 0.3, (0.3, 0.7), 0.1), seed=0)
    assert as_tuple.get_config()["color_jitter"] == as_dict.get_config()["color_jitter"]
    np.testing.assert_allclose(as_tuple(x, training=True).numpy(), out, atol=1e-3)


# ------------------------------------------------------------------ geometry semantics


def test_zoom_out_with_constant_fill_leaves_border_equal_to_cval():
    x = images(batch=4, height=30, width=30, low=100.0, high=200.0)
    layer = ImageAugmentation(zoom_range=[1.5, 1.5], fill_mode="constant", cval=7.0, seed=0)
    out = layer(x, training=True).numpy()
    # A 1.5x zoom-out shows the image in the central 20 of 30 pixels.
    for border in (out[:, :4], out[:, -4:], out[:, :, :4], out[:, :, -4:]):
        np.testing.assert_array_equal(border, 7.0)
    assert (out[:, 8:22, 8:22] >= 100.0).all()


def test_zoom_greater_than_one_zooms_out_and_less_than_one_zooms_in():
    x = np.zeros((1, 41, 41, 1), "float32")
    x[0, 10:31, 10:31] = 255.0  # a 21 x 21 square in the middle

    def square_side(zoom):
        layer = ImageAugmentation(zoom_range=[zoom, zoom], fill_mode="constant", seed=0)
        out = layer(x, training=True).numpy()[0, :, :, 0]
        return (out[20] > 127).sum(), (out[:, 20] > 127).sum()

    assert square_side(2.0) == (11, 11)   # zoom out: half the size
    width, height = square_side(0.7)      # zoom in: 21 / 0.7 = 30
    assert 29 <= width <= 31 and 29 <= height <= 31


def test_zoom_draws_x_and_y_independently():
    x = np.zeros((32, 41, 41, 1), "float32")
    x[:, 10:31, 10:31] = 255.0
    out = ImageAugmentation(zoom_range=[0.6, 1.6], fill_mode="constant", seed=0)(
        x, training=True
    ).numpy()
    widths = (out[:, 20, :, 0] > 127).sum(axis=1)
    heights = (out[:, :, 20, 0] > 127).sum(axis=1)
    assert (np.abs(widths - heights) > 2).any()


def _bar_columns(out, row):
    cols = np.nonzero(out[row] > 127)[0]
    return cols.min(), cols.max()


def test_shear_is_about_the_centre_with_slope_tan_angle():
    height, width = 41, 61
    x = np.zeros((16, height, width, 1), "float32")
    x[:, :, 28:33] = 255.0  # vertical bar, columns 28..32
    layer = ImageAugmentation(shear_range=30, fill_mode="constant", seed=0)
    out = layer(x, training=True).numpy()[..., 0]
    slope = math.tan(math.radians(30))
    slopes = []
    for image in out:
        # The centre row does not move, so the image is not translated.
        assert _bar_columns(image, 20) == (28, 32)
        top, bottom = np.mean(_bar_columns(image, 0)), np.mean(_bar_columns(image, 40))
        # Rows above and below the centre move in opposite directions, by equal amounts.
        assert abs((top - 30) + (bottom - 30)) <= 1.0
        slopes.append(abs(bottom - top) / 40)
    assert max(slopes) <= slope + 0.03
    assert max(slopes) > 0.5 * slope  # the range is used


def test_shear_range_is_in_degrees_like_imagedatagenerator():
    # IDG's common `shear_range=0.2` is 0.2 degrees: at most tan(0.2 deg) * 20 = 0.07 px.
    x = images(batch=8, height=41, width=41)
    out = ImageAugmentation(shear_range=0.2, seed=0)(x, training=True).numpy()
    assert np.abs(out - x)[:, 15:26, 15:26].max() < 0.1 * 255


def test_shift_in_pixels_and_fraction():
    x = np.zeros((32, 20, 50, 1), "float32")
    x[:, :, 25] = 255.0  # one bright column
    for value, limit in ((5, 5), (0.1, 5)):
        out = ImageAugmentation(width_shift_range=value, fill_mode="constant", seed=0)(
            x, training=True
        ).numpy()[..., 0]
        centres = [np.average(np.arange(50), weights=image[10]) for image in out]
        shifts = np.abs(np.array(centres) - 25)
        assert shifts.max() <= limit + 1e-3 and shifts.max() > limit / 2
        # Horizontal only: every row of an image has the column at the same place.
        np.testing.assert_allclose(out[:, 0], out[:, 19], atol=1e-3)


def test_height_shift_moves_vertically():
    x = np.zeros((16, 50, 20, 1), "float32")
    x[:, 25, :] = 255.0  # one bright row
    out = ImageAugmentation(height_shift_range=0.2, fill_mode="constant", seed=0)(
        x, training=True
    ).numpy()[..., 0]
    np.testing.assert_allclose(out[:, :, 0], out[:, :, 19], atol=1e-3)
    assert not np.allclose(out, x[..., 0])


def test_random_resized_crop_keeps_size_and_zooms_in():
    x = images(batch=16, height=32, width=32)
    out = ImageAugmentation(random_resized_crop=(0.1, 0.3), seed=0)(x, training=True).numpy()
    assert out.shape == x.shape
    # A crop of at most 30% of the area, stretched back: much smoother than the noise input.
    assert np.abs(np.diff(out, axis=2)).mean() < 0.7 * np.abs(np.diff(x, axis=2)).mean()
    # Full-area crop with ratio 1 on a square image is the identity.
    full = ImageAugmentation(random_resized_crop=(1.0, 1.0), crop_aspect_ratio=(1.0, 1.0))
    np.testing.assert_allclose(full(x, training=True).numpy(), x, atol=1e-3)


# ------------------------------------------------------------- config and saving


def test_get_config_mirrors_init_and_round_trips():
    layer = ImageAugmentation(
        rescale=1 / 255, rotation_range=15, width_shift_range=0.1, height_shift_range=4,
        shear_range=10, zoom_range=[0.8, 1.2], horizontal_flip=True, vertical_flip=True,
        brightness_range=[0.7, 1.3], channel_shift_range=20, fill_mode="reflect", cval=3,
        random_resized_crop=(0.3, 1.0), crop_aspect_ratio=(0.5, 2.0),
        color_jitter={"hue": 0.1}, value_range=(0, 255), seed=11, name="aug",
    )
    config = layer.get_config()
    init_args = set(inspect.signature(ImageAugmentation.__init__).parameters) - {"self", "kwargs"}
    assert set(config) == init_args | {"name", "trainable"}
    json.dumps(config)  # JSON-friendly
    clone = ImageAugmentation.from_config(config)
    assert clone.get_config() == config
    assert ImageAugmentation.from_config(json.loads(json.dumps(config))).get_config() == config
    default = ImageAugmentation()
    assert ImageAugmentation.from_config(default.get_config()).get_config() == default.get_config()


def test_saves_and_loads_inside_a_keras_model(tmp_path):
    x = images(batch=6, height=16, width=16)
    inputs = keras.Input((16, 16, 3))
    augmented = ImageAugmentation(
        rescale=1 / 255, rotation_range=10, width_shift_range=2, zoom_range=0.1,
        horizontal_flip=True, brightness_range=(0.9, 1.1), seed=3,
    )(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(augmented))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.zeros((6, 2)), epochs=1, batch_size=3, verbose=0)  # training=True path
    assert_saves_and_reloads(model, x, tmp_path, rtol=1e-5, atol=1e-6, same_config_of=ImageAugmentation)


def test_output_is_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = ImageAugmentation(rotation_range=10, brightness_range=(0.9, 1.1))
        assert layer(images(), training=True).dtype == tf.float32
    finally:
        keras.config.set_dtype_policy(previous)


def test_describe_and_repr_list_active_transforms():
    layer = ImageAugmentation(
        rescale=1 / 255, shear_range=0.2, zoom_range=0.2, horizontal_flip=True
    )
    text = layer.describe()
    assert repr(layer) == (
        "ImageAugmentation(rescale=0.003922, shear_range=0.2, zoom_range=0.2, "
        "horizontal_flip=True)"
    )
    for expected in ("RandomShear", "RandomZoom", 'RandomFlip("horizontal")', "inference"):
        assert expected in text
    assert "RandomRotation" not in text
    assert "no random transform" in ImageAugmentation().describe()


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "name, value, hint",
    [
        ("featurewise_center", True, "Normalization"),
        ("featurewise_std_normalization", True, "Normalization"),
        ("samplewise_center", True, "per_image_standardization"),
        ("samplewise_std_normalization", True, "per_image_standardization"),
        ("zca_whitening", True, "remove"),
        ("zca_epsilon", 1e-3, "remove"),
        ("preprocessing_function", lambda x: x, "dataset.map"),
        ("data_format", "channels_first", "transpose"),
        ("validation_split", 0.2, "tf_finetune.data.image_folder.split"),
        ("interpolation_order", 0, "bilinear"),
        ("dtype", "float16", "float32"),
    ],
)
def test_unsupported_imagedatagenerator_argument_says_what_to_do(name, value, hint):
    with pytest.raises(ValueError) as info:
        ImageAugmentation(**{name: value})
    message = str(info.value)
    assert f"`{name}`" in message and hint in message and f"Received: {name}=" in message


def test_imagedatagenerator_defaults_of_unsupported_arguments_are_accepted():
    layer = ImageAugmentation(
        featurewise_center=False, samplewise_center=False, zca_whitening=False,
        zca_epsilon=1e-6, validation_split=0.0, data_format="channels_last",
        preprocessing_function=None, dtype="float32", horizontal_flip=True,
    )
    assert layer.get_config()["horizontal_flip"] is True


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(shear_range=60), "shear_range"),
        (dict(shear_range=-1), "shear_range"),
        (dict(rotation_range=200), "rotation_range"),
        (dict(zoom_range=1.5), "zoom_range"),
        (dict(zoom_range=[0.5, 2.5]), "zoom_range"),
        (dict(zoom_range=[1.2, 0.8]), "zoom_range"),
        (dict(width_shift_range=[-3, 0, 3]), "width_shift_range"),
        (dict(width_shift_range=-0.1), "width_shift_range"),
        (dict(horizontal_flip="yes"), "horizontal_flip"),
        (dict(brightness_range=0.5), "brightness_range"),
        (dict(brightness_range=(1.2, 0.8)), "brightness_range"),
        (dict(channel_shift_range=300), "channel_shift_range"),
        (dict(fill_mode="mirror"), "fill_mode"),
        (dict(random_resized_crop=(0.0, 1.0)), "random_resized_crop"),
        (dict(random_resized_crop=0.5), "random_resized_crop"),
        (dict(crop_aspect_ratio=(0, 1)), "crop_aspect_ratio"),
        (dict(color_jitter={"sharpness": 0.1}), "color_jitter"),
        (dict(color_jitter=(0.1, 0.2)), "color_jitter"),
        (dict(value_range=(1, 0)), "value_range"),
        (dict(seed=1.5), "seed"),
        (dict(rotation=10), "rotation"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, fragment):
    with pytest.raises(ValueError, match="Received") as info:
        ImageAugmentation(**kwargs)
    assert fragment in str(info.value)


def test_pixel_shift_larger_than_image_is_an_error():
    with pytest.raises(ValueError, match="width_shift_range"):
        ImageAugmentation(width_shift_range=40)(images(width=32), training=True)


# ---------------------------------------------------------------- with real data


def test_works_through_make_dataset_on_real_images():
    from tf_finetune.data import image_folder

    folder = image_folder.scan(require_data("plantvillage"), max_per_class=1, seed=0)
    augmentation = ImageAugmentation(
        rescale=1 / 255, shear_range=0.2, zoom_range=0.2, horizontal_flip=True, seed=0
    )
    ds = image_folder.make_dataset(
        folder.files, folder.labels, image_size=(64, 64), batch_size=4, shuffle=True,
        seed=0, augmentation=augmentation, cache=True,
    )
    epochs = []
    for _ in range(2):
        batches = list(ds.as_numpy_iterator())
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        assert x.shape == (len(folder), 64, 64, 3) and x.dtype == np.float32
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
        assert sorted(y.tolist()) == sorted(folder.labels)
        epochs.append(x[np.argsort(y, kind="stable")])
    assert not np.allclose(epochs[0], epochs[1])  # augmented differently each epoch
    plain = image_folder.make_dataset(
        folder.files, folder.labels, image_size=(64, 64), batch_size=4, augmentation=None
    )
    reference = np.concatenate([b[0] for b in plain.as_numpy_iterator()]) / 255.0
    labels = np.concatenate([b[1] for b in plain.as_numpy_iterator()])
    # Mild augmentation: the augmented images still resemble the originals.
    diff = np.abs(epochs[0] - reference[np.argsort(labels, kind="stable")]).mean()
    assert diff < 0.15


def test_a_call_seed_fixes_the_draws():
    layer = ImageAugmentation(rotation_range=30, zoom_range=0.2, horizontal_flip=True)
    x = images()
    first = layer(x, training=True, seed=tf.constant([1, 2]))
    np.testing.assert_array_equal(first, layer(x, training=True, seed=tf.constant([1, 2])))
    assert not np.allclose(first, layer(x, training=True, seed=tf.constant([1, 3])))
    np.testing.assert_array_equal(layer(x, training=False, seed=tf.constant([1, 2])), x)


def test_seeded_pipelines_augment_every_batch_the_same_in_every_run():
    from tf_finetune.data import image_folder

    x = images(batch=48, height=16, width=16).astype("uint8")
    labels = np.arange(48) % 3

    def epochs(n=2):
        layer = ImageAugmentation(rotation_range=30, horizontal_flip=True)  # unseeded on purpose
        ds = image_folder.batch_images(tf.data.Dataset.from_tensor_slices((x, labels)), batch_size=4,
                                       shuffle=True, seed=7, augmentation=layer)
        return [[b.numpy() for b, _ in ds] for _ in range(n)]

    one, two = epochs(), epochs()  # two "runs": a parallel map each, the same seed
    for epoch_one, epoch_two in zip(one, two):
        for a, b in zip(epoch_one, epoch_two):
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(np.stack(one[0]), np.stack(one[1]))  # epochs still differ
