"""Seeds for one augmentation call, split statelessly from one base seed.

Keras 3 preprocessing layers draw seeds from a `SeedGenerator` variable by
read-then-increment. In a `tf.data` map that runs several batches at once, two of them can
read the same state and get the same random parameters (measured: about 1% of batches).
`ImageAugmentation` therefore draws one seed per call (atomically, from a
`tf.random.Generator`, or from the pipeline's per-batch seed stream) and hands its stages a
`SeedStream` over it. See "Randomness" in `docs/augmentation.md`.
"""

import random

import keras
import tensorflow as tf


class SeedStream(keras.random.SeedGenerator):
    """Seeds for one call, split statelessly from one base seed.

    Keras random ops accept a `SeedGenerator` and call its `next()` once per draw; this
    one returns `fold_in(base, 1)`, `fold_in(base, 2)`, ... so the draws of one call are
    independent of each other and fully determined by `base`. It holds no variable (the
    base class's `__init__`, which creates one, is deliberately not called).
    """

    def __init__(self, base):  # pylint: disable=super-init-not-called
        self._base = base
        self._count = 0
        self.name = "seed_stream"

    def next(self, ordered=True):
        self._count += 1
        return tf.random.experimental.stateless_fold_in(self._base, self._count)

    def get_config(self):
        raise TypeError("SeedStream is per call and is never serialised.")


def generator(seed=None):
    """The `tf.random.Generator` a layer draws one seed per call from.

    From `seed` when given. Without one, from a non-deterministic state, unless op determinism
    is on (`--deterministic`, `tf.config.experimental.enable_op_determinism`), where
    TensorFlow refuses that state: then from a seed drawn from Python's `random`, which
    `keras.utils.set_random_seed` seeds, so a deterministic run stays deterministic.
    """
    if seed is not None:
        return tf.random.Generator.from_seed(seed)
    try:
        return tf.random.Generator.from_non_deterministic_state()
    except RuntimeError:  # "cannot be called when determinism is enabled"
        return tf.random.Generator.from_seed(random.getrandbits(63))


def int32_seed(pair):
    """A `[2]` int64 seed pair (e.g. from `tf.data.Dataset.random`) as a stateless int32 seed."""
    return tf.cast(pair % (2**31 - 1), tf.int32)
