"""`BatchMixing`: MixUp and CutMix on training batches, with Keras's own layers.

MixUp (Zhang et al. 2018) blends each image of a batch with another image of the same batch,
and their one-hot labels by the same weight, drawn from Beta(a, a). CutMix (Yun et al. 2019)
pastes a box of another image of the batch into each image, the labels mixed by the box's
area (the box's area fraction drawn from Beta(a, a)). Both work on one-hot labels, so the
trainer switches to categorical cross-entropy when a run mixes (`Trainer.fit(mixing=...)`).
With both on, each batch gets one of the two, with probability 1/2 (timm's `switch_prob`).

`keras.layers.MixUp` and `keras.layers.CutMix` draw the parameters and mix; this class only
gives them one seed per batch (a `SeedStream`), so a batch's mix is a function of the epoch's
seed and the batch's index: each epoch is a function of (seed, stage, epoch) with mixing on
too, and a resumed run mixes as the uninterrupted one did.

    mixing = BatchMixing(mixup=0.2, cutmix=1.0)
    epoch = mixing.apply(one_hot_batches, seed=1234)   # a dataset of (images, soft labels)

Validation, test and exported models never see it: mixing is training data, like augmentation.
"""

import keras
import tensorflow as tf

from tf_finetune.augmentation.seeds import SeedStream


class BatchMixing:
    """MixUp and/or CutMix over batches of `(images [B, H, W, C], one-hot labels [B, K])`.

    Args:
        mixup: MixUp's Beta parameter `a` in [0, 1] (0 = off); the paper used 0.2 on ImageNet,
            1.0 on CIFAR-10.
        cutmix: CutMix's Beta parameter `a` in [0, 1] (0 = off); the paper used 1.0 (the box's
            area uniform in [0, 1]). Passed to `keras.layers.CutMix` as `factor=(a, a)`:
            Keras's scalar `factor=f` would draw `a` itself from [0, f].
    """

    def __init__(self, mixup=0.0, cutmix=0.0):
        for name, value in (("mixup", mixup), ("cutmix", cutmix)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"`{name}` must be a number in [0, 1] (0 = off). Received: {name}={value!r}")
        self.mixup, self.cutmix = float(mixup), float(cutmix)
        self._mixup = keras.layers.MixUp(alpha=self.mixup, dtype="float32") if self.mixup else None
        self._cutmix = keras.layers.CutMix(factor=(self.cutmix, self.cutmix), dtype="float32") if self.cutmix else None

    @property
    def active(self):
        """Whether any mixing is on."""
        return bool(self._mixup or self._cutmix)

    def __call__(self, images, labels, seed):
        """`(mixed images, mixed labels)` of one batch; `seed` is an int32 `[2]` tensor."""
        labels = tf.cast(labels, tf.float32)
        if not self.active:
            return images, labels
        if labels.shape.rank != 2:
            raise ValueError(f"BatchMixing needs one-hot labels [batch, classes]. Received: labels of shape "
                             f"{labels.shape}")
        seed = tf.cast(seed, tf.int32)
        if self._mixup and self._cutmix:
            coin = tf.random.stateless_uniform([], seed=tf.random.experimental.stateless_fold_in(seed, -1))
            return tf.cond(coin < 0.5, lambda: self._mix(self._mixup, images, labels, seed),
                           lambda: self._mix(self._cutmix, images, labels, seed))
        return self._mix(self._mixup or self._cutmix, images, labels, seed)

    @staticmethod
    def _mix(layer, images, labels, seed):
        transformation = layer.get_random_transformation(images, training=True, seed=SeedStream(seed))
        mixed = layer.transform_images(images, transformation, training=True)
        return tf.cast(mixed, images.dtype), layer.transform_labels(labels, transformation, training=True)

    def apply(self, dataset, seed):
        """`dataset` of `(images, one-hot labels)` batches, each batch mixed with the seed
        `(seed, its index)`: the same batches every time it is iterated."""
        if not self.active:
            return dataset
        base = tf.constant(int(seed) & 0x7FFFFFFF, tf.int32)

        def mix(index, batch):
            images, labels = batch[0], batch[1]
            images, labels = self(images, labels, tf.stack([base, tf.cast(index, tf.int32)]))
            return (images, labels, *batch[2:])

        return dataset.enumerate().map(mix, num_parallel_calls=tf.data.AUTOTUNE)

    def describe(self):
        """What is on, for logs and run records."""
        parts = []
        if self._mixup:
            parts.append(f"MixUp (keras.layers.MixUp, Beta({self.mixup:g}, {self.mixup:g}))")
        if self._cutmix:
            parts.append(f"CutMix (keras.layers.CutMix, Beta({self.cutmix:g}, {self.cutmix:g}))")
        if len(parts) == 2:
            return " or ".join(parts) + ", one of the two per batch"
        return parts[0] if parts else "none"

    def __repr__(self):
        return f"BatchMixing(mixup={self.mixup:g}, cutmix={self.cutmix:g})"
