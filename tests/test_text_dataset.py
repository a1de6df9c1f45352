"""Length-bucketed text batches: every text once per epoch, a known batch count, similar lengths."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from tf_finetune.data import text_dataset


def corpus(n=300, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 120, size=n)
    texts = [" ".join(f"w{i}_{j}" for j in range(k)) for i, k in enumerate(lengths)]
    return texts, [int(i % 3) for i in range(n)]


def test_bucket_boundaries_scale_with_max_length():
    assert text_dataset.bucket_boundaries(400) == [50, 100, 150, 200, 300]
    assert text_dataset.bucket_boundaries(8) == [1, 2, 3, 4, 6]
    assert text_dataset.bucket_boundaries(2) == [1]


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_text_once_per_epoch_with_its_label_and_known_batch_count(shuffle):
    texts, labels = corpus()
    ds = text_dataset.make_text_dataset(texts, labels, batch_size=16, max_length=64, shuffle=shuffle, seed=1)
    for _ in range(2):  # two epochs: the count holds after a reshuffle too
        seen, batches = [], 0
        for x, y in ds:
            batches += 1
            seen.extend(zip((t.decode() for t in x.numpy()), y.numpy().tolist()))
        assert batches == int(ds.cardinality()) > len(texts) // 16
        assert sorted(seen) == sorted(zip(texts, labels))


def test_batches_hold_texts_of_similar_length():
    texts, labels = corpus()
    boundaries = text_dataset.bucket_boundaries(64)
    ds = text_dataset.make_text_dataset(texts, labels, batch_size=16, max_length=64)
    for x, _ in ds:
        lengths = [min(len(t.split()), 64) for t in x.numpy()]
        buckets = {int(np.searchsorted(boundaries, n, side="right")) for n in lengths}
        assert len(buckets) == 1, lengths


def test_unbucketed_batches_keep_the_order():
    texts, labels = corpus(40)
    ds = text_dataset.make_text_dataset(texts, labels, batch_size=16, max_length=64, bucket=False)
    assert [t.decode() for x, _ in ds for t in x.numpy()] == texts
    assert int(ds.cardinality()) == 3


def test_augmentation_runs_on_each_training_batch():
    calls = collections.Counter()

    def upper(x, training):
        calls[training] += 1
        return tf.strings.upper(x)

    texts, labels = corpus(50)
    ds = text_dataset.make_text_dataset(texts, labels, batch_size=8, max_length=64, augmentation=upper)
    out = [t.decode() for x, _ in ds for t in x.numpy()]
    assert sorted(out) == sorted(t.upper() for t in texts)
    assert set(calls) == {True}


def test_mismatched_or_empty_inputs_are_errors():
    with pytest.raises(ValueError, match="Received: len"):
        text_dataset.make_text_dataset(["a"], [0, 1], batch_size=2, max_length=4)
    with pytest.raises(ValueError, match="Received: texts"):
        text_dataset.make_text_dataset([], [], batch_size=2, max_length=4)
