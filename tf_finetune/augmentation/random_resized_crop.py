"""`RandomResizedCrop`: the Inception-style random crop, resized back to the input size."""

import math

import keras
import tensorflow as tf

from tf_finetune.augmentation import arguments
from tf_finetune.augmentation.stage import AugmentationStage


@keras.saving.register_keras_serializable(package="tf_finetune")
class RandomResizedCrop(AugmentationStage):
    """Inception-style random crop, resized back to the input size.

    For each image: an area fraction `s ~ U[scale]` and an aspect ratio (width / height)
    `r ~ logU[ratio]` give a crop of `s * H * W` pixels; it is placed uniformly at random
    inside the image and resized (bilinear) to `H x W` with `tf.image.crop_and_resize`,
    one batched op. Up to 10 draws per image are tried for a crop that fits; if none does,
    the last draw is clipped to the image (torchvision falls back to a centre crop).

    Args:
        scale: `(min_area, max_area)`, fractions of the image area in (0, 1].
        ratio: `(min, max)` aspect ratio (width / height) of the crop, > 0.
        seed: int or None.
    """

    _TRIES = 10

    def __init__(self, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.scale = arguments.range_pair("scale", scale, low=0.0, high=1.0, low_open=True)
        self.ratio = arguments.range_pair("ratio", ratio, low=0.0, low_open=True)

    def get_random_transformation(self, images, training=True, seed=None):
        if not training:
            return None
        seed = self.generator if seed is None else seed
        shape = tf.shape(images)
        batch = shape[0]
        height = tf.cast(shape[1], tf.float32)
        width = tf.cast(shape[2], tf.float32)
        tries = (batch, self._TRIES)
        area = keras.random.uniform(tries, self.scale[0], self.scale[1], seed=seed)
        log_ratio = keras.random.uniform(
            tries, math.log(self.ratio[0]), math.log(self.ratio[1]), seed=seed
        )
        ratio = tf.exp(log_ratio)
        # Crop height and width as fractions of the image's: h*w = area, (w*W)/(h*H) = r.
        aspect = ratio * height / width
        crop_h = tf.sqrt(area / aspect)
        crop_w = tf.sqrt(area * aspect)
        fits = tf.logical_and(crop_h <= 1.0, crop_w <= 1.0)
        # The first try that fits, else the last one (clipped below).
        first = tf.argmax(
            tf.concat([tf.cast(fits, tf.int32), tf.ones((batch, 1), tf.int32)], axis=1),
            axis=1,
            output_type=tf.int32,
        )
        first = tf.minimum(first, self._TRIES - 1)
        crop_h = tf.minimum(tf.gather(crop_h, first, batch_dims=1), 1.0)
        crop_w = tf.minimum(tf.gather(crop_w, first, batch_dims=1), 1.0)
        offsets = keras.random.uniform((batch, 2), 0.0, 1.0, seed=seed)
        top = offsets[:, 0] * (1.0 - crop_h)
        left = offsets[:, 1] * (1.0 - crop_w)
        boxes = tf.stack([top, left, top + crop_h, left + crop_w], axis=1)
        return {"boxes": boxes}

    def transform_images(self, images, transformation, training=True):
        images = tf.cast(images, tf.float32)
        if not training or transformation is None:
            return images
        shape = tf.shape(images)
        out = tf.image.crop_and_resize(
            images,
            transformation["boxes"],
            tf.range(shape[0]),
            crop_size=shape[1:3],
            method="bilinear",
        )
        return tf.ensure_shape(out, images.shape)

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "ratio": self.ratio,
            "seed": self.seed,
        }
