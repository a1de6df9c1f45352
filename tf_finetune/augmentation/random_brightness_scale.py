"""`RandomBrightnessScale`: ImageDataGenerator's multiplicative `brightness_range` as a layer."""

import keras
import tensorflow as tf

from tf_finetune.augmentation import arguments
from tf_finetune.augmentation.stage import AugmentationStage


@keras.saving.register_keras_serializable(package="tf_finetune")
class RandomBrightnessScale(AugmentationStage):
    """Multiplies each image by a random `u ~ U[factor[0], factor[1]]`, clipped.

    ImageDataGenerator's `brightness_range` (PIL `ImageEnhance.Brightness`): `0.5` halves
    the brightness, `1.0` leaves it unchanged. `keras.layers.RandomBrightness` adds a
    value instead. With a `value_range` not starting at 0, `x - low` is scaled.

    Args:
        factor: `(lo, hi)`, `0 <= lo <= hi`.
        value_range: `(low, high)` of the input values; the output is clipped to it.
        seed: int or None.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = arguments.range_pair("factor", factor, low=0.0)
        self.value_range = arguments.value_range(value_range)

    def get_random_transformation(self, images, training=True, seed=None):
        if not training:
            return None
        seed = self.generator if seed is None else seed
        batch = tf.shape(images)[0]
        scale = keras.random.uniform(
            (batch, 1, 1, 1), self.factor[0], self.factor[1], dtype="float32", seed=seed
        )
        return {"scale": scale}

    def transform_images(self, images, transformation, training=True):
        images = tf.cast(images, tf.float32)
        if not training or transformation is None:
            return images
        low, high = self.value_range
        images = low + (images - low) * transformation["scale"]
        return tf.clip_by_value(images, low, high)

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "value_range": self.value_range,
            "seed": self.seed,
        }

