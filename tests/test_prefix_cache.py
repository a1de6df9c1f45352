"""Frozen prefixes: the FrozenPrefix layer, splitting a model, the PrefixCache, the trainer route."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import assert_saves_and_reloads
from tf_finetune.config import TrainConfig
from tf_finetune.errors import UserError
from tf_finetune.models.frozen_prefix import FrozenPrefix
from tf_finetune.models.frozen_prefix import split_model
from tf_finetune.run_dir import read_history
from tf_finetune.training import trainer as trainer_lib
from tf_finetune.training.prefix_cache import PrefixCache

D = 4


def sequence_model(dropout=0.5):
    """(B, T) int ids -> probabilities; the bottom (embedding + dense + dropout) is frozen and
    passes a padding mask up, like bert_classifier's encoder bottom."""
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, D, name="embed")(ids)
    x = keras.layers.Dense(D, activation="tanh", name="bottom_dense")(x)
    x = keras.layers.Dropout(dropout)(x)
    mask = keras.ops.cast(keras.ops.not_equal(ids, 0), "int32")
    bottom = keras.Model(ids, [x, mask], name="bottom")
    inputs = keras.Input((None,), dtype="int32")
    hidden, padding_mask = FrozenPrefix(bottom)(inputs)
    weights = keras.ops.expand_dims(keras.ops.cast(padding_mask, "float32"), -1)
    pooled = keras.ops.sum(hidden * weights, axis=1) / keras.ops.sum(weights, axis=1)  # masked mean
    x = keras.layers.Dense(D, activation="relu", name="top_dense")(pooled)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(x))


def token_data(n=48, seed=0, batch=8):
    """Rows of ids 1..19 padded with 0 to 6, label = whether id 1 occurs."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((n, 6), "int32")
    lengths = rng.integers(1, 7, n)
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.integers(1, 20, length)
    labels = (ids == 1).any(axis=1).astype("int32")
    return tf.data.Dataset.from_tensor_slices((ids, labels)).batch(batch), lengths


def test_frozen_prefix_is_frozen_and_stays_in_inference_mode():
    model = sequence_model(dropout=0.9)
    layer = model.get_layer("frozen_prefix")
    assert not layer.trainable and not layer.trainable_weights
    assert {w.path.split("/")[0] for w in model.trainable_weights} == {"top_dense", "head"}
    ids = np.array([[3, 4, 5, 0]], "int32")
    # Keras 3 passes training=True down to nested layers; FrozenPrefix keeps dropout off.
    a, b = (model(ids, training=True) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(layer(ids)[0], layer.layer(ids, training=False)[0])
    prefix, _ = split_model(model)
    np.testing.assert_array_equal(prefix(ids, training=True)[0], prefix(ids, training=False)[0])


def test_frozen_prefix_round_trips_through_keras_saving(tmp_path):
    model = sequence_model()
    ids = np.array([[3, 4, 0, 0], [5, 6, 7, 1]], "int32")
    loaded = assert_saves_and_reloads(model, ids, tmp_path, same_trainable_weights=True)
    assert not loaded.get_layer("frozen_prefix").trainable


def test_split_model_composes_back_to_the_model_and_shares_its_layers():
    model = sequence_model()
    prefix, top = split_model(model)
    ids = np.array([[3, 4, 0, 0], [5, 6, 7, 1]], "int32")
    np.testing.assert_allclose(top(prefix(ids)), model(ids), atol=1e-6)
    assert {id(w) for w in top.trainable_weights} == {id(w) for w in model.trainable_weights}


def test_split_model_needs_a_frozen_prefix_and_a_frozen_bottom():
    with pytest.raises(ValueError, match="has no FrozenPrefix"):
        split_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    inputs = keras.Input((3,))
    x = keras.layers.Dense(3, name="trainable_below")(inputs)
    x = FrozenPrefix(keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)]))(x)
    with pytest.raises(ValueError, match=r"must be frozen too.*trainable_below"):
        split_model(keras.Model(inputs, keras.layers.Dense(2)(x)))


def test_cache_stores_each_sequence_without_padding_and_rebatches_by_length():
    model = sequence_model()
    prefix, top = split_model(model)
    ds, lengths = token_data(n=40)
    cache = PrefixCache.compute(prefix, ds)
    assert len(cache) == 40
    np.testing.assert_array_equal(cache.lengths, lengths)
    assert cache.values.shape == (lengths.sum(), D)

    batches = cache.dataset(8, shuffle=True, seed=0)
    assert int(batches.cardinality()) == len(list(batches))  # known up front, and right
    seen = 0
    for (hidden, mask), labels in batches:
        row_lengths = mask.numpy().sum(axis=1)
        assert hidden.shape[1] == row_lengths.max()  # padded to its own longest only
        seen += len(labels)
    assert seen == 40


def test_cached_outputs_give_the_model_outputs_for_the_same_weights():
    model = sequence_model()
    prefix, top = split_model(model)
    ds, _ = token_data(n=32)
    expected = np.concatenate([model.predict_on_batch(x) for x, _ in ds])
    labels = np.concatenate([y for _, y in ds])
    cache = PrefixCache.compute(prefix, ds)
    got = np.concatenate([top.predict_on_batch(x) for x, _ in cache.dataset(32)])
    # One batch of 32 in the original order only if nothing is shuffled: compare as sets of rows.
    got_labels = np.concatenate([y for _, y in cache.dataset(32)])
    order = np.lexsort(expected.T[::-1]), np.lexsort(got.T[::-1])
    np.testing.assert_allclose(got[order[1]], expected[order[0]], atol=1e-6)
    assert sorted(got_labels) == sorted(labels)


def test_cache_refuses_to_outgrow_its_memory_budget():
    prefix, _ = split_model(sequence_model())
    ds, _ = token_data(n=32)
    with pytest.raises(UserError, match="--no-cache-frozen-prefix"):
        PrefixCache.compute(prefix, ds, max_bytes=100)


@pytest.mark.parametrize("cache", [True, False])
def test_trainer_leaves_the_frozen_prefix_unchanged_and_checkpoints_the_whole_model(tmp_path, cache):
    config = TrainConfig(epochs=3, batch_size=8, learning_rate=0.05, fine_tune_epochs=0,
                         cache_frozen_prefix=cache)
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    model = trainer.build_model(sequence_model)
    frozen_before = [w.copy() for w in model.get_layer("frozen_prefix").get_weights()]
    head_before = [w.copy() for w in model.get_layer("head").get_weights()]
    train, _ = token_data(n=64, seed=0)
    val, _ = token_data(n=32, seed=1)
    best = trainer.fit(model, train, val)

    for w0, w1 in zip(frozen_before, model.get_layer("frozen_prefix").get_weights()):
        np.testing.assert_array_equal(w0, w1)
    assert any(not np.array_equal(w0, w1) for w0, w1 in zip(head_before, model.get_layer("head").get_weights()))
    # The checkpoint is the whole model: it takes the raw ids.
    assert isinstance(best.get_layer("frozen_prefix"), FrozenPrefix)
    ids = np.array([[1, 2, 3, 0, 0, 0]], "int32")
    assert best.predict_on_batch(ids).shape == (1, 2)
    history = read_history(str(tmp_path))
    assert len(history["val_accuracy"]) == 3
