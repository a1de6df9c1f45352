"""`PrefixCache`: a frozen prefix's outputs over a dataset, computed once and kept in memory.

The trainer's half of frozen-prefix caching (the model's half is
`tf_finetune.models.frozen_prefix`): `compute` runs the prefix once over the training or
validation data, and `dataset` serves its outputs as batches for fitting the model's top,
reshuffled and re-batched every epoch. Sequence outputs are stored without their padding and
padded again per batch, grouped by length, so batches stay as short as the texts in them.
"""

import logging
import os
import time

import numpy as np

from tf_finetune.data import text_dataset
from tf_finetune.errors import UserError

logger = logging.getLogger(__name__)

REPORT_SECONDS = 30  # progress lines while the prefix runs


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

    def dataset(self, batch_size, *, shuffle=False, seed=None, reshuffle=True):
        """A batched `tf.data.Dataset` of `(cached outputs, labels)`, with a known length.

        Sequence outputs come as `(sequence [B, T, D], padding_mask [B, T])`, each batch
        padded to its longest example and drawn from one length bucket. `shuffle` shuffles
        the examples, anew on every pass unless `reshuffle=False` (then `seed` fixes it).
        """
        import tensorflow as tf

        n = len(self)
        ds = tf.data.Dataset.from_tensor_slices(self._tensors())
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=reshuffle)
        if self.lengths is None:
            return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        ds = ds.map(lambda seq, y: ((seq, tf.ones(tf.shape(seq)[:1], tf.int32)), y))
        ds = text_dataset.bucket_by_length(
            ds, self.lengths, lambda x, y: tf.shape(x[0])[0], batch_size=batch_size,
            boundaries=text_dataset.fine_bucket_boundaries(int(self.lengths.max())), pad=True,
        )
        return ds.prefetch(tf.data.AUTOTUNE)

    def batches(self, seed, batch_size):
        """One epoch of shuffled training batches whose order `seed` fixes (the trainer's
        `train(seed, batch_size)`)."""
        return self.dataset(batch_size, shuffle=True, seed=seed, reshuffle=False)

    def _tensors(self):
        """`(values, labels)` as tensors, made once (the values can be gigabytes)."""
        import tensorflow as tf

        if getattr(self, "_as_tensors", None) is None:
            values = tf.constant(self.values)
            if self.lengths is not None:
                values = tf.RaggedTensor.from_row_lengths(values, self.lengths)
            self._as_tensors = (values, tf.constant(self.labels))
        return self._as_tensors


def _half_the_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30
