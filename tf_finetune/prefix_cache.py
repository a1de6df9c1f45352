"""Frozen-prefix caching: run a model's frozen bottom once, then train only its top.

When the bottom of a model is frozen (BERT's embeddings and first transformer layers, say),
every epoch recomputes exactly the same outputs for it. A model marks that bottom by wrapping
it in `FrozenPrefix`; the trainer then

1. splits the model at that layer (`split_model`): `prefix` maps the model's inputs to the
   frozen outputs, `top` maps those to the model's outputs and shares its layers with the
   model, so training `top` trains the model;
2. runs `prefix` once over the training and validation data (`PrefixCache.compute`) and keeps
   the outputs in memory;
3. fits `top` on batches of the cached outputs (`PrefixCache.dataset`), reshuffled and
   re-batched every epoch.

The frozen prefix always runs in inference mode (dropout off), cached or not, so both routes
compute the same function of the same weights.

Outputs the cache understands:

- a `(sequence, padding_mask)` pair, `[B, T, D]` and `[B, T]`: each example is stored without
  its padding, and each epoch's batches are padded again, grouped by length, so batches
  stay as short as the texts in them;
- a single tensor `[B, ...]`, stored as is.
"""

import logging
import os
import time

import keras
import numpy as np

from tf_finetune import text_dataset
from tf_finetune.errors import UserError

logger = logging.getLogger(__name__)

NAME = "frozen_prefix"
REPORT_SECONDS = 30  # progress lines while the prefix runs


@keras.saving.register_keras_serializable(package="tf_finetune")
class FrozenPrefix(keras.layers.Wrapper):
    """Runs `layer` frozen and in inference mode: the bottom of a model that never trains.

    Keras 3 functional models pass the outer `training` flag down to every nested layer, so
    `base(x, training=False)` alone does not keep dropout off once the outer model trains.
    This wrapper does, and it marks where `split_model` cuts the model.

    Args:
        layer: the frozen part, e.g. a functional model from token ids to hidden states.
    """

    def __init__(self, layer, **kwargs):
        kwargs.setdefault("name", NAME)
        kwargs.pop("trainable", None)
        super().__init__(layer, **kwargs)
        self._freeze()

    def build(self, input_shape=None):
        super().build(input_shape)
        self._freeze()

    def _freeze(self):
        # Every layer below, one by one: `trainable = False` on the wrapper is not enough after
        # loading, where a keras-hub layer deserialized frozen builds sublayers that are
        # trainable and that its own flag no longer reaches.
        self.trainable = False
        for layer in self.layer._flatten_layers(include_self=True, recursive=True):
            layer.trainable = False

    def call(self, inputs):
        return self.layer(inputs, training=False)

    def compute_output_spec(self, inputs):
        return self.layer.compute_output_spec(inputs)


def find_frozen_prefix(model):
    """The model's `FrozenPrefix` layer, or None."""
    found = [layer for layer in getattr(model, "layers", []) if isinstance(layer, FrozenPrefix)]
    if len(found) > 1:
        raise ValueError(
            f"A model can have one FrozenPrefix layer. Received: {[layer.name for layer in found]}"
        )
    return found[0] if found else None


def split_model(model):
    """`(prefix, top)` functional models around the model's `FrozenPrefix` layer.

    `prefix` maps the model's inputs to the frozen outputs; `top` maps those outputs to the
    model's outputs, with the model's own layers (training `top` trains `model`).
    """
    layer = find_frozen_prefix(model)
    if layer is None:
        raise ValueError(f"Model {model.name!r} has no FrozenPrefix layer to split at.")
    prefix = keras.Model(model.input, layer.output, name=f"{model.name}_prefix")
    if prefix.trainable_weights:
        raise ValueError(
            "Every layer below the FrozenPrefix layer must be frozen too. Received trainable: "
            f"{sorted({w.path.split('/')[0] for w in prefix.trainable_weights})}"
        )
    top = keras.Model(layer.output, model.output, name=f"{model.name}_top")
    return prefix, top


class PrefixCache:
    """The frozen prefix's outputs for every example of a dataset, in memory.

    Attributes:
        values: `[total_tokens, D]` sequence rows of all examples back to back (sequence
            outputs), or `[N, ...]` (single-tensor outputs).
        lengths: `[N]` tokens per example for sequence outputs, else None.
        labels: `[N, ...]` the dataset's labels.
    """

    def __init__(self, values, labels, lengths=None):
        self.values = values
        self.labels = labels
        self.lengths = lengths

    def __len__(self):
        return len(self.labels)

    @property
    def nbytes(self):
        return self.values.nbytes

    @classmethod
    def compute(cls, prefix, dataset, *, description="data", max_bytes=None):
        """Runs `prefix` over every `(inputs, labels)` batch of `dataset` once.

        Args:
            prefix: a model from the dataset's inputs to the frozen outputs.
            dataset: a finite batched `tf.data.Dataset` of `(inputs, labels)`.
            description: what the data is, for the progress lines.
            max_bytes: fail with a `UserError` once the cache would hold more than this
                (default: half of the machine's memory).
        """
        import tensorflow as tf

        max_bytes = max_bytes or _half_the_memory()
        run = tf.function(lambda x: prefix(x, training=False), reduce_retracing=True)
        total = int(dataset.cardinality())
        values, labels, lengths = [], [], []
        nbytes, seen, start = 0, 0, time.time()
        last_report = start
        for step, (x, y) in enumerate(dataset):
            out = run(x)
            if isinstance(out, (list, tuple)):
                sequence, mask = (np.asarray(t) for t in out)
                row_lengths = mask.astype(bool).sum(axis=1)
                values.extend(row[:n] for row, n in zip(sequence, row_lengths))
                lengths.append(row_lengths)
                nbytes += sum(int(n) for n in row_lengths) * sequence.shape[-1] * sequence.itemsize
            else:
                out = np.asarray(out)
                values.append(out)
                nbytes += out.nbytes
            labels.append(np.asarray(y))
            seen += len(labels[-1])
            if nbytes > max_bytes:
                raise UserError(
                    f"The frozen layers' outputs for the {description} need more than "
                    f"{max_bytes / 2**30:.1f} GB of memory: lower --max-length (or use less "
                    "data), or pass --no-cache-frozen-prefix to recompute them every step."
                )
            if time.time() - last_report > REPORT_SECONDS:
                last_report = time.time()
                logger.info("Frozen prefix on the %s: %d examples (batch %d of %d), %.0f examples/s.",
                            description, seen, step + 1, total, seen / (last_report - start))
        if not labels:
            raise ValueError(f"The {description} dataset is empty; nothing to cache.")
        labels = np.concatenate(labels)
        if lengths:
            return cls(np.concatenate(values), labels, np.concatenate(lengths).astype(np.int64))
        return cls(np.concatenate(values), labels)

    def dataset(self, batch_size, *, shuffle=False, seed=None):
        """A batched `tf.data.Dataset` of `(cached outputs, labels)`, with a known length.

        Sequence outputs come as `(sequence [B, T, D], padding_mask [B, T])`, each batch
        padded to its longest example and drawn from one length bucket; `shuffle` reshuffles
        the examples every epoch.
        """
        import tensorflow as tf

        n = len(self)
        if self.lengths is None:
            ds = tf.data.Dataset.from_tensor_slices((self.values, self.labels))
            if shuffle:
                ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
            return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

        rows = tf.RaggedTensor.from_row_lengths(self.values, self.lengths)
        ds = tf.data.Dataset.from_tensor_slices((rows, self.labels))
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda seq, y: ((seq, tf.ones(tf.shape(seq)[:1], tf.int32)), y))
        ds = text_dataset.bucket_by_length(
            ds, self.lengths, lambda x, y: tf.shape(x[0])[0], batch_size=batch_size,
            boundaries=text_dataset.fine_bucket_boundaries(int(self.lengths.max())), pad=True,
        )
        return ds.prefetch(tf.data.AUTOTUNE)


def _half_the_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30
