"""`tf.data` pipelines of raw texts for models that tokenize inside the graph.

Recurrent models run one step per token of the longest text in a batch, so batches of
similar lengths train much faster than random ones (about 2x on IMDB reviews). The
pipeline shuffles, then groups texts into length buckets
(`tf.data.Dataset.bucket_by_sequence_length`), so each batch is padded only to its own
longest text. Lengths are counted in Python before the pipeline, so the number of batches
is known up front (the trainer's schedules need it) and text augmentation, applied per
batch after bucketing, cannot move a text to another bucket.
"""

import bisect
import math

# Bucket edges as fractions of `max_length`.
BUCKET_FRACTIONS = (1 / 8, 1 / 4, 3 / 8, 1 / 2, 3 / 4)


def bucket_boundaries(max_length):
    """Length bucket edges for texts cut at `max_length` tokens."""
    return sorted({max(1, int(max_length * f)) for f in BUCKET_FRACTIONS})


def fine_bucket_boundaries(max_length, start=4, growth=1.25):
    """Narrow bucket edges for short texts: `start`, then each edge `growth` times the last
    (at least 2 more), below `max_length`.

    For models whose cost grows with every padded token, like transformers: SST-2 phrases
    are 2 to 50 words, and the coarse `bucket_boundaries` would pad most of them twice over.
    """
    edges, edge = [], start
    while edge < max_length:
        edges.append(edge)
        edge = max(edge + 2, int(round(edge * growth)))
    return edges


def word_counts(texts, max_length):
    """Whitespace word count of each text, capped at `max_length` (a proxy for tokens)."""
    return [min(len(text.split()), max_length) for text in texts]


def num_batches(lengths, boundaries, batch_size):
    """Batches `bucket_by_sequence_length` makes: each bucket's rows in batches of `batch_size`."""
    counts = [0] * (len(boundaries) + 1)
    for length in lengths:
        counts[bisect.bisect_right(boundaries, length)] += 1
    return sum(math.ceil(n / batch_size) for n in counts)


def bucket_by_length(ds, lengths, length_fn, *, batch_size, boundaries, pad=False):
    """Batches `ds` from length buckets, with the number of batches asserted up front.

    Args:
        ds: an unbatched dataset.
        lengths: the length of every element of `ds`, as `length_fn` measures it.
        length_fn: element -> scalar int32 length (in the graph).
        batch_size: elements per batch.
        boundaries: bucket edges (a bucket holds lengths in `[edge_i, edge_i+1)`).
        pad: pad each batch's elements to its longest with zeros (False: elements must
            batch as they are, e.g. scalar strings).
    """
    import tensorflow as tf

    ds = ds.bucket_by_sequence_length(
        length_fn,
        bucket_boundaries=list(boundaries),
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        no_padding=not pad,
    )
    return ds.apply(tf.data.experimental.assert_cardinality(num_batches(lengths, boundaries, batch_size)))


def make_text_dataset(texts, labels, *, batch_size, max_length, shuffle=False, seed=None,
                      augmentation=None, bucket=True, boundaries=None, reshuffle=True):
    """A batched dataset of (1-D tf.string texts, int32 labels or float32 target rows).

    Args:
        texts: sequence of str.
        labels: sequence of int class ids, one per text, or a 2-D float array of targets
            (one row per text: a distillation's packed targets).
        batch_size: texts per batch.
        max_length: the model's token limit; texts longer than this share the last bucket.
        shuffle: shuffle the texts (training).
        seed: the shuffle's seed, and (with a `TextAugmentation`) each batch's augmentation's.
        augmentation: optional callable `(strings, training=True) -> strings` applied to
            each training batch (e.g. `tf_finetune.augmentation.TextAugmentation`).
        bucket: group texts of similar length (False: plain batches in the given order).
        boundaries: bucket edges in words (default: `bucket_boundaries(max_length)`).
        reshuffle: a new order (and augmentation) on every pass; False: every pass is the
            same, a function of `seed` (how the trainer makes each epoch reproducible).
    """
    import tensorflow as tf

    if len(texts) != len(labels):
        raise ValueError(
            f"texts and labels must have the same length. Received: len(texts)={len(texts)}, "
            f"len(labels)={len(labels)}"
        )
    if not len(texts):
        raise ValueError("make_text_dataset needs at least one text. Received: texts=[]")
    lengths = word_counts(texts, max_length)
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(list(texts), tf.string), _labels_tensor(labels),
         tf.constant(lengths, tf.int32))
    )
    if shuffle:
        ds = ds.shuffle(len(texts), seed=seed, reshuffle_each_iteration=reshuffle)
    if bucket:
        ds = bucket_by_length(ds, lengths, lambda text, label, length: length,
                              batch_size=batch_size,
                              boundaries=boundaries or bucket_boundaries(max_length))
    else:
        ds = ds.batch(batch_size)
    ds = ds.map(lambda text, label, length: (text, label))
    if augmentation is not None and seed is not None and hasattr(augmentation, "word_deletion"):
        # A seed per batch from a seeded stream, so a parallel map augments the same way in
        # every run (see `tf_finetune.augmentation.text_augmentation`).
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=reshuffle).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda batch, pair: (augmentation(batch[0], training=True, seed=pair), batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
    elif augmentation is not None:
        ds = ds.map(lambda text, label: (augmentation(text, training=True), label),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _labels_tensor(labels):
    import numpy as np
    import tensorflow as tf

    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        return tf.constant(labels, tf.float32)
    return tf.constant(list(labels), tf.int32)
