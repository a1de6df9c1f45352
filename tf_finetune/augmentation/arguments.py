"""ImageAugmentation's arguments: checks, ImageDataGenerator's unsupported ones, formatting.

Every check takes the argument's name and value, raises a `ValueError` that names the
argument and echoes what it received, and returns the value in a plain, JSON-friendly form
(what `ImageAugmentation.get_config()` returns). No TensorFlow here. See `docs/augmentation.md` for what each
argument means and how it maps to ImageDataGenerator's.
"""

import math
import numbers

_DATASET_STATISTICS = (
    "dataset-wide statistics are not computed here (there is no `.fit(x)`). Put the "
    "normalisation in the model so that serving gets it too: the backbone's own "
    "preprocessing, or a `keras.layers.Normalization()` adapted on training images."
)
_PER_IMAGE = (
    "per-image standardisation is normalisation, not augmentation: do it inside the model "
    "(e.g. a layer calling `tf.image.per_image_standardization`) so that serving gets it too."
)
# ImageDataGenerator arguments with no counterpart here: default value (what IDG did when
# the argument was left out, so passing it changes nothing) and what to do instead.
UNSUPPORTED = {
    "featurewise_center": (False, _DATASET_STATISTICS),
    "featurewise_std_normalization": (False, _DATASET_STATISTICS),
    "samplewise_center": (False, _PER_IMAGE),
    "samplewise_std_normalization": (False, _PER_IMAGE),
    "zca_whitening": (
        False,
        "ZCA whitening is not supported; remove it (pretrained backbones expect their own "
        "preprocessing instead).",
    ),
    "zca_epsilon": (1e-6, "ZCA whitening is not supported; remove `zca_epsilon`."),
    "preprocessing_function": (
        None,
        "apply the function in the model (e.g. the backbone's preprocessing layer) or in "
        "the tf.data pipeline with `dataset.map`; it must be TensorFlow code there, not "
        "NumPy.",
    ),
    "data_format": (
        None,
        "images are channels-last, [batch, height, width, channels]; transpose "
        "channels-first data before (`tf.transpose(x, [0, 2, 3, 1])`).",
    ),
    "validation_split": (
        0.0,
        "split the file list instead: `tf_finetune.data.image_folder.split(folder, "
        "validation_split, seed)` makes a seeded stratified train/validation split, and "
        "the validation dataset gets no augmentation.",
    ),
    "interpolation_order": (
        1,
        "interpolation is always bilinear (IDG's default `interpolation_order=1`).",
    ),
    "dtype": (
        None,
        "the output is always float32; cast it afterwards if you need another dtype.",
    ),
}
ALSO_ACCEPTED_DEFAULTS = {"data_format": ("channels_last",), "dtype": ("float32",)}
# How points outside an image are filled (Keras and ImageDataGenerator alike).
FILL_MODES = ("nearest", "constant", "reflect", "wrap")
COLOR_JITTER_KEYS = ("brightness", "contrast", "saturation", "hue")


def check_unsupported(kwargs):
    for name, (default, advice) in UNSUPPORTED.items():
        if name not in kwargs:
            continue
        value = kwargs.pop(name)
        accepted = (default, *ALSO_ACCEPTED_DEFAULTS.get(name, ()))
        if name == "dtype":
            import keras  # only here: this module stays free of TensorFlow

            if isinstance(value, keras.DTypePolicy):
                value = value.name
        if value is default or (not callable(value) and value in accepted):
            continue  # IDG's default: passing it changes nothing.
        raise ValueError(
            f"ImageDataGenerator's `{name}` is not supported by ImageAugmentation: "
            f"{advice} Received: {name}={value!r}"
        )


def is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def plain(value):
    """An int stays an int, other reals become float (JSON-friendly)."""
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def number(name, value, low=None, high=None, unit=""):
    if not is_number(value) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a number. Received: {name}={value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(
            f"`{name}` must be between {low:g} and {high:g}{unit}. "
            f"Received: {name}={value!r}"
            if high is not None
            else f"`{name}` must be >= {low:g}{unit}. Received: {name}={value!r}"
        )
    return plain(value)


def optional_number(name, value):
    if value is None:
        return None
    return number(name, value)


def flag(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return value


def shift(name, value):
    if isinstance(value, (list, tuple)) or hasattr(value, "shape"):
        raise ValueError(
            f"`{name}` as a list of allowed shifts (ImageDataGenerator's array form) is "
            "not supported: give a fraction of the size (< 1) or a number of pixels "
            f"(>= 1). Received: {name}={value!r}"
        )
    return number(name, value, low=0)


def range_pair(name, value, low=None, high=None, low_open=False):
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(is_number(v) and math.isfinite(v) for v in value)
    ):
        raise ValueError(
            f"`{name}` must be a pair of numbers (lower, upper). Received: {name}={value!r}"
        )
    lo, hi = (float(v) for v in value)
    bad_low = low is not None and (lo <= low if low_open else lo < low)
    bad_high = high is not None and hi > high
    if lo > hi or bad_low or bad_high:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"<= {high:g}")
        within = f", both {' and '.join(bounds)}" if bounds else ""
        raise ValueError(
            f"`{name}` must be (lower, upper) with lower <= upper{within}. "
            f"Received: {name}={value!r}"
        )
    return (lo, hi)


def value_range(value):
    pair = range_pair("value_range", value)
    if pair[0] >= pair[1]:
        raise ValueError(
            f"`value_range` must be (low, high) with low < high, e.g. (0, 255) or (0, 1). "
            f"Received: value_range={value!r}"
        )
    return pair


def zoom_range(value):
    if is_number(value):
        if not 0 <= value < 1:
            raise ValueError(
                "`zoom_range` as a float z means [1 - z, 1 + z] and must be in [0, 1); "
                f"or give [lower, upper]. Received: zoom_range={value!r}"
            )
        return (1.0 - value, 1.0 + value)
    pair = range_pair("zoom_range", value, low=0.0, high=2.0, low_open=True)
    return pair


def color_jitter(value):
    if value is None:
        return {}
    if isinstance(value, (list, tuple)):
        if len(value) != 4:
            raise ValueError(
                "`color_jitter` as a sequence must have 4 entries (brightness, contrast, "
                f"saturation, hue), None for off. Received: color_jitter={value!r}"
            )
        value = dict(zip(COLOR_JITTER_KEYS, value))
    if not isinstance(value, dict):
        raise ValueError(
            "`color_jitter` must be None, a dict with keys among "
            f"{', '.join(COLOR_JITTER_KEYS)}, or a 4-tuple. Received: "
            f"color_jitter={value!r}"
        )
    unknown = sorted(set(value) - set(COLOR_JITTER_KEYS))
    if unknown:
        raise ValueError(
            f"`color_jitter` keys must be among {', '.join(COLOR_JITTER_KEYS)}. "
            f"Received: color_jitter={value!r}"
        )
    out = {}
    for key in COLOR_JITTER_KEYS:
        factor = value.get(key)
        if factor is None:
            continue
        if is_number(factor):
            out[key] = plain(factor)
        else:
            out[key] = range_pair(f"color_jitter[{key!r}]", factor)
    return out


def fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(fmt(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {fmt(v)}" for k, v in value.items()) + "}"
    return repr(value)

