"""`ImageAugmentation`: ImageDataGenerator's augmentation arguments as one Keras layer.

Keras 3 removed `ImageDataGenerator`. This layer takes the same argument names with the same
meaning and runs on float32 batches, inside `tf.data` (`tf_finetune.data.image_folder.
make_dataset(..., augmentation=aug)`) or inside a model. The Keras layers named in
`docs/augmentation.md` (the argument-by-argument migration table) draw the random
parameters; the geometric ones, flips included, are applied as one affine transform per
image (`tf_finetune.augmentation.affine`), as ImageDataGenerator does.

Training vs inference: with `training=True` the random transforms run, then `rescale`.
Otherwise every random transform is the identity and only `rescale` is applied: `rescale` is
normalisation, not augmentation, so it happens at inference too.
"""

import inspect
import math

import keras
import tensorflow as tf

from tf_finetune.augmentation import affine
from tf_finetune.augmentation import arguments
from tf_finetune.augmentation import seeds
from tf_finetune.augmentation.random_brightness_scale import RandomBrightnessScale
from tf_finetune.augmentation.random_resized_crop import RandomResizedCrop
from tf_finetune.augmentation.seeds import SeedStream


@keras.saving.register_keras_serializable(package="tf_finetune")
class ImageAugmentation(keras.layers.Layer):
    """ImageDataGenerator's augmentation arguments, as one Keras layer.

    See docs/augmentation.md for the argument-by-argument mapping to Keras layers.

    Args:
        rescale: multiply by this after augmenting, also at inference (`None`/`0`: off).
        rotation_range: degrees; uniform rotation in `[-d, d]`.
        width_shift_range, height_shift_range: `< 1`: fraction of the width/height;
            `>= 1`: pixels.
        shear_range: degrees (not a fraction), at most 45.
        zoom_range: float `z` for `[1 - z, 1 + z]`, or `[lower, upper]`; > 1 zooms out.
        horizontal_flip, vertical_flip: flip with probability 1/2, independently.
        brightness_range: `None` or `[lo, hi]`, a multiplicative factor.
        channel_shift_range: add one random value in `[-r, r]` to all channels.
        fill_mode: `"nearest"`, `"constant"`, `"reflect"` or `"wrap"`.
        cval: fill value for `fill_mode="constant"`.
        random_resized_crop: `None` or `(min_area, max_area)`, e.g. `(0.08, 1.0)`.
        crop_aspect_ratio: `(min, max)` width/height ratio of the random crop.
        color_jitter: `None`, or a dict with some of `brightness`, `contrast`,
            `saturation`, `hue` (or a 4-tuple of them, `None` for off), as factors of
            `keras.layers.RandomBrightness/RandomContrast/RandomSaturation/RandomHue`.
        value_range: `(low, high)` of the input values (before `rescale`).
        seed: int for a reproducible sequence of augmentations, or None.
        name, trainable: as for any Keras layer.
    """

    def __init__(
        self,
        rescale=None,
        rotation_range=0,
        width_shift_range=0,
        height_shift_range=0,
        shear_range=0,
        zoom_range=0,
        horizontal_flip=False,
        vertical_flip=False,
        brightness_range=None,
        channel_shift_range=0,
        fill_mode="nearest",
        cval=0.0,
        random_resized_crop=None,
        crop_aspect_ratio=(3 / 4, 4 / 3),
        color_jitter=None,
        value_range=(0, 255),
        seed=None,
        **kwargs,
    ):
        arguments.check_unsupported(kwargs)
        unknown = sorted(set(kwargs) - {"name", "trainable"})
        if unknown:
            raise ValueError(
                f"Unknown argument(s) {', '.join(unknown)} for ImageAugmentation. Valid "
                f"arguments: {', '.join(ARGUMENTS)}, name, trainable. Received: "
                + ", ".join(f"{k}={kwargs[k]!r}" for k in unknown)
            )
        super().__init__(dtype="float32", **kwargs)
        self.supports_jit = False

        # Validated, JSON-friendly copies of the arguments: get_config() returns these.
        self.rescale = arguments.optional_number("rescale", rescale)
        self.rotation_range = arguments.number(
            "rotation_range", rotation_range, low=0, high=180, unit=" degrees"
        )
        self.width_shift_range = arguments.shift("width_shift_range", width_shift_range)
        self.height_shift_range = arguments.shift("height_shift_range", height_shift_range)
        self.shear_range = arguments.number(
            "shear_range", shear_range, low=0, high=45, unit=" degrees (as in IDG)"
        )
        self._zoom = arguments.zoom_range(zoom_range)  # (lower, upper)
        self.zoom_range = arguments.plain(zoom_range) if arguments.is_number(zoom_range) else self._zoom
        self.horizontal_flip = arguments.flag("horizontal_flip", horizontal_flip)
        self.vertical_flip = arguments.flag("vertical_flip", vertical_flip)
        self.brightness_range = (
            None
            if brightness_range is None
            else arguments.range_pair("brightness_range", brightness_range, low=0.0)
        )
        self.value_range = arguments.value_range(value_range)
        self.channel_shift_range = arguments.number(
            "channel_shift_range",
            channel_shift_range,
            low=0,
            high=self.value_range[1] - self.value_range[0],
        )
        if fill_mode not in arguments.FILL_MODES:
            raise ValueError(
                f"`fill_mode` must be one of {', '.join(map(repr, arguments.FILL_MODES))}. "
                f"Received: fill_mode={fill_mode!r}"
            )
        self.fill_mode = fill_mode
        self.cval = float(arguments.number("cval", cval))
        self.random_resized_crop = (
            None
            if random_resized_crop is None
            else arguments.range_pair(
                "random_resized_crop", random_resized_crop, low=0.0, high=1.0, low_open=True
            )
        )
        self.crop_aspect_ratio = arguments.range_pair(
            "crop_aspect_ratio", crop_aspect_ratio, low=0.0, low_open=True
        )
        self.color_jitter = arguments.color_jitter(color_jitter) or None
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
        self.seed = seed

        # One seed per call from an atomic generator (see `tf_finetune.augmentation.seeds`).
        self._rng = seeds.generator(seed)
        # Keras layers draw the random parameters (`get_random_transformation`). The
        # geometric ones are applied together as one affine transform (see "Speed" in
        # docs/augmentation.md); pixel-valued shifts need the image size: see build().
        self._crop = None
        if self.random_resized_crop is not None:
            self._crop = RandomResizedCrop(
                self.random_resized_crop, self.crop_aspect_ratio, name="random_resized_crop"
            )
        geometry = {"fill_mode": self.fill_mode, "fill_value": self.cval, "dtype": "float32"}
        self._rotation = None
        if self.rotation_range:
            self._rotation = keras.layers.RandomRotation(
                self.rotation_range / 360.0, name="rotation", **geometry
            )
        self._shift = None
        self._shear = None
        if self.shear_range:
            self._shear = keras.layers.RandomShear(
                x_factor=math.tan(math.radians(self.shear_range)),
                y_factor=0.0,
                name="shear",
                **geometry,
            )
        self._zoom_layer = None
        if self._zoom != (1.0, 1.0):
            factor = (self._zoom[0] - 1.0, self._zoom[1] - 1.0)
            self._zoom_layer = keras.layers.RandomZoom(factor, factor, name="zoom", **geometry)
        self._horizontal_flip = None
        if self.horizontal_flip:
            self._horizontal_flip = keras.layers.RandomFlip(
                "horizontal", name="horizontal_flip", dtype="float32"
            )
        self._vertical_flip = None
        if self.vertical_flip:
            self._vertical_flip = keras.layers.RandomFlip(
                "vertical", name="vertical_flip", dtype="float32"
            )
        # Per-image colour transforms, in this order (IDG: channel shift, then brightness).
        self._color = []
        low, high = self.value_range
        if self.channel_shift_range:
            shift = self.channel_shift_range / (high - low)
            self._color.append(
                keras.layers.RandomBrightness(
                    (-shift, shift), value_range=self.value_range, name="channel_shift",
                    dtype="float32",
                )
            )
        if self.brightness_range is not None:
            self._color.append(
                RandomBrightnessScale(
                    self.brightness_range, value_range=self.value_range, name="brightness"
                )
            )
        jitter_layers = {
            "brightness": keras.layers.RandomBrightness,
            "contrast": keras.layers.RandomContrast,
            "saturation": keras.layers.RandomSaturation,
            "hue": keras.layers.RandomHue,
        }
        for key in arguments.COLOR_JITTER_KEYS:
            if key in (self.color_jitter or {}):
                self._color.append(
                    jitter_layers[key](
                        self.color_jitter[key],
                        value_range=self.value_range,
                        name=f"color_jitter_{key}",
                        dtype="float32",
                    )
                )

    # ------------------------------------------------------------------ keras hooks

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) not in (3, 4):
            raise ValueError(
                "ImageAugmentation expects images [batch, height, width, channels] or "
                f"[height, width, channels]. Received: input_shape={input_shape}"
            )
        height, width = input_shape[-3], input_shape[-2]
        factors = []
        for name, value, size in (
            ("height_shift_range", self.height_shift_range, height),
            ("width_shift_range", self.width_shift_range, width),
        ):
            if value < 1:
                factors.append(float(value))
                continue
            if size is None:
                raise ValueError(
                    f"`{name}` >= 1 is a number of pixels, which needs the image size, "
                    "but the input size is not static: give a fraction (< 1) instead, "
                    f"or resize images first. Received: {name}={value!r}, "
                    f"input_shape={input_shape}"
                )
            if value > size:
                raise ValueError(
                    f"`{name}` in pixels must be at most the image size ({size}). "
                    f"Received: {name}={value!r}"
                )
            factors.append(float(value) / size)
        if any(factors) and self._shift is None:
            self._shift = keras.layers.RandomTranslation(
                factors[0],
                factors[1],
                fill_mode=self.fill_mode,
                fill_value=self.cval,
                name="shift",
                dtype="float32",
            )
        super().build(input_shape)

    def call(self, images, training=None, seed=None):
        """Augments `images` when `training`.

        `seed`: an int32 tensor of shape `[2]` that fixes this call's random draws
        (stateless); by default each call draws one from the layer's generator. The image
        pipelines pass one per batch from a seeded `tf.data.Dataset.random`, so a batch's
        augmentation does not depend on which thread of a parallel map computes it.
        """
        images = tf.convert_to_tensor(images)
        if images.dtype != tf.float32:
            images = tf.cast(images, tf.float32)
        if isinstance(training, tf.Tensor):
            augmented = tf.cond(
                training, lambda: self._augment(images, seed), lambda: tf.identity(images)
            )
        elif training:
            augmented = self._augment(images, seed)
        else:
            augmented = images
        if self.rescale:
            augmented = augmented * tf.constant(self.rescale, tf.float32)
        return augmented

    def _augment(self, images, seed=None):
        geometric = [
            layer
            for layer in (self._rotation, self._shift, self._shear, self._zoom_layer)
            if layer is not None
        ]
        flips = [f for f in (self._horizontal_flip, self._vertical_flip) if f is not None]
        if self._crop is None and not (geometric or flips or self._color):
            return images
        unbatched = images.shape.rank == 3
        if unbatched:
            images = images[tf.newaxis]
        # One atomic draw per call (or the caller's seed), split statelessly over the
        # stages, always in the same order (see `seeds`, and "Randomness" in
        # docs/augmentation.md).
        if seed is None:
            seed = self._rng.uniform_full_int([2], dtype=tf.int32)
        stream = SeedStream(tf.cast(seed, tf.int32))

        def sample(layer):
            return layer.get_random_transformation(images, training=True, seed=stream)

        crop = [self._crop] if self._crop is not None else []
        if crop or geometric or flips:
            params = {layer.name: sample(layer) for layer in crop + geometric + flips}
            images = affine.affine_resample(
                images, affine.affine_matrix(images, params), self.fill_mode, self.cval
            )
        for stage in self._color:
            images = stage.transform_images(images, sample(stage))
        images = tf.cast(images, tf.float32)
        return images[0] if unbatched else images

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, images, training=None):
        return keras.KerasTensor(images.shape, dtype="float32")

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            **{key: getattr(self, key) for key in ARGUMENTS},
        }

    # -------------------------------------------------------------- for the user

    @property
    def is_random(self):
        """Whether training images differ from one pass to the next (any random transform is
        on); False when at most `rescale` applies, so a model's outputs on them can be cached."""
        return bool(self._crop is not None or self._rotation is not None or self._shear is not None
                    or self._zoom_layer is not None or self._horizontal_flip is not None
                    or self._vertical_flip is not None or self._color
                    or self.width_shift_range or self.height_shift_range)

    def active(self):
        """The non-default arguments, in `__init__` order, as a dict."""
        out = {}
        for key, default in ARGUMENTS.items():
            value = getattr(self, key)
            if value != default:
                out[key] = value
        if self.random_resized_crop is None:
            out.pop("crop_aspect_ratio", None)
        geometric = (
            self.rotation_range or self.width_shift_range or self.height_shift_range
            or self.shear_range or self._zoom != (1.0, 1.0)
        )
        if not geometric:
            out.pop("fill_mode", None)
            out.pop("cval", None)
        return out

    def describe(self):
        """What each active argument became, one line each, in the order applied."""
        lines = [repr(self)]
        low, high = self.value_range
        fill = f"fill_mode={self.fill_mode!r}" + (
            f", cval={self.cval:g}" if self.fill_mode == "constant" else ""
        )
        geometric = []
        if self.rotation_range:
            geometric.append(
                f"rotation_range={self.rotation_range:g} deg: keras.layers.RandomRotation("
                f"factor={self.rotation_range / 360:.4g})"
            )
        for name, value, axis in (
            ("height_shift_range", self.height_shift_range, "height_factor"),
            ("width_shift_range", self.width_shift_range, "width_factor"),
        ):
            if value:
                if value < 1:
                    geometric.append(
                        f"{name}={value:g} (of the size): keras.layers.RandomTranslation("
                        f"{axis}={value:g})"
                    )
                else:
                    factor = (
                        f"{getattr(self._shift, axis):.4g}"
                        if self._shift is not None
                        else "pixels / size, set when built"
                    )
                    geometric.append(
                        f"{name}={value:g} pixels: keras.layers.RandomTranslation("
                        f"{axis}={factor})"
                    )
        if self.shear_range:
            geometric.append(
                f"shear_range={self.shear_range:g} deg: keras.layers.RandomShear(x_factor="
                f"tan({self.shear_range:g} deg)={math.tan(math.radians(self.shear_range)):.4g}"
                "), about the centre"
            )
        if self._zoom != (1.0, 1.0):
            lo, hi = self._zoom
            geometric.append(
                f"zoom_range={arguments.fmt(self.zoom_range)}: keras.layers.RandomZoom(height_factor="
                f"({lo - 1:.4g}, {hi - 1:.4g}), width_factor=({lo - 1:.4g}, {hi - 1:.4g})), "
                "x and y independent, > 1 zooms out"
            )
        flips = []
        if self.horizontal_flip:
            flips.append('horizontal_flip=True: keras.layers.RandomFlip("horizontal")')
        if self.vertical_flip:
            flips.append('vertical_flip=True: keras.layers.RandomFlip("vertical")')
        steps = []
        if self.random_resized_crop is not None:
            geometric.insert(
                0,
                f"random_resized_crop={arguments.fmt(self.random_resized_crop)}: RandomResizedCrop("
                f"scale={arguments.fmt(self.random_resized_crop)}, "
                f"ratio={arguments.fmt(self.crop_aspect_ratio)})",
            )
        if geometric:
            steps.append(
                f"one affine transform per image (bilinear, {fill}), parameters from:"
            )
            steps.extend("  " + line for line in geometric + flips)
        else:
            steps.extend(flips)
        if self.channel_shift_range:
            r = self.channel_shift_range
            steps.append(
                f"channel_shift_range={r:g}: keras.layers.RandomBrightness(factor="
                f"+-{r / (high - low):.4g}, value_range={arguments.fmt(self.value_range)})"
            )
        if self.brightness_range is not None:
            steps.append(
                f"brightness_range={arguments.fmt(self.brightness_range)}: RandomBrightnessScale "
                "(multiplicative)"
            )
        layers = {"brightness": "RandomBrightness", "contrast": "RandomContrast",
                  "saturation": "RandomSaturation", "hue": "RandomHue"}
        for key, factor in (self.color_jitter or {}).items():
            steps.append(
                f"color_jitter[{key!r}]={arguments.fmt(factor)}: keras.layers.{layers[key]}"
                f"(value_range={arguments.fmt(self.value_range)})"
            )
        if steps:
            lines.append("  training=True, in this order:")
            lines.extend("    " + step for step in steps)
        else:
            lines.append("  training=True: no random transform")
        if self.rescale:
            lines.append(f"  then always, also at inference: multiply by {self.rescale:.6g}")
        else:
            lines.append("  at inference: identity")
        return "\n".join(lines)

    def __repr__(self):
        args = ", ".join(f"{k}={arguments.fmt(v)}" for k, v in self.active().items())
        return f"ImageAugmentation({args})"


# The constructor's arguments and their defaults, read from its signature (written once).
ARGUMENTS = {
    name: parameter.default
    for name, parameter in inspect.signature(ImageAugmentation.__init__).parameters.items()
    if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and name != "self"
}
