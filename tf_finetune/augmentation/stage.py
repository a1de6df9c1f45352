"""`AugmentationStage`: the base of the small augmentation layers `ImageAugmentation` composes."""

import keras
import tensorflow as tf


class AugmentationStage(keras.layers.Layer):
    """A layer following the Keras 3 augmentation protocol, usable on its own.

    Subclasses implement `get_random_transformation(images, training, seed)` and
    `transform_images(images, transformation, training)`, the two methods
    `ImageAugmentation` calls on every stage (Keras's own image preprocessing layers have
    the same two methods).
    """

    def __init__(self, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self.supports_jit = False

    def call(self, images, training=True):
        images = tf.cast(images, tf.float32)
        if not training:
            return images
        unbatched = images.shape.rank == 3
        if unbatched:
            images = images[tf.newaxis]
        transformation = self.get_random_transformation(images, training=True)
        images = self.transform_images(images, transformation, training=True)
        return images[0] if unbatched else images

    def compute_output_shape(self, input_shape):
        return input_shape
