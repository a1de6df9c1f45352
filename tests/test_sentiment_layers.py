"""The sentiment encoder's own layers: truncation, masked max-pooling, standardization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from projects.sentiment_lstm.layers import BinaryToCategorical
from projects.sentiment_lstm.layers import MaskedGlobalMaxPooling1D
from projects.sentiment_lstm.layers import TruncateSequence
from projects.sentiment_lstm.layers import standardize


def test_standardize_reads_imdb_and_sst2_alike():
    imdb = "I didn't like it.<br /><br />It's DULL, isn't it?"
    sst2 = "i did n't like it . it 's dull , is n't it ?"
    out = standardize(tf.constant([imdb, sst2])).numpy()
    assert out[0].split() == out[1].split() == b"i did not like it it s dull is not it".split()


def test_standardize_keeps_non_ascii_letters():
    assert standardize(tf.constant("Amélie: très BIEN!")).numpy().split() == "amélie très bien".encode().split()


def test_truncate_keeps_the_first_steps_and_the_mask():
    ids = tf.constant([[5, 6, 7, 8], [9, 0, 0, 0]])
    layer = TruncateSequence(2)
    np.testing.assert_array_equal(layer(ids), [[5, 6], [9, 0]])
    mask = layer.compute_mask(ids, tf.not_equal(ids, 0))
    np.testing.assert_array_equal(mask, [[True, True], [True, False]])
    np.testing.assert_array_equal(TruncateSequence(10)(ids), ids)
    assert layer.compute_output_shape((None, 4)) == (None, 2)
    assert TruncateSequence.from_config(layer.get_config()).max_length == 2
    with pytest.raises(ValueError, match="Received: max_length=0"):
        TruncateSequence(0)


def test_masked_max_pool_ignores_padded_steps():
    x = tf.constant([[[-3.0, -1.0], [-2.0, -5.0], [0.0, 0.0]]])  # last step is padding
    mask = tf.constant([[True, True, False]])
    pool = MaskedGlobalMaxPooling1D()
    np.testing.assert_array_equal(pool(x, mask=mask), [[-2.0, -1.0]])
    # Keras' GlobalMaxPooling1D would let the padding's zeros win:
    np.testing.assert_array_equal(keras.layers.GlobalMaxPooling1D()(x), [[0.0, 0.0]])
    np.testing.assert_array_equal(pool(x, mask=tf.zeros((1, 3), bool)), [[0.0, 0.0]])
    np.testing.assert_array_equal(pool(x), [[0.0, 0.0]])


def test_binary_to_categorical_is_exactly_binary_cross_entropy():
    p = tf.constant([[0.9], [0.2]])
    two = BinaryToCategorical()(p)
    np.testing.assert_allclose(two, [[0.1, 0.9], [0.8, 0.2]], rtol=1e-6)
    y = tf.constant([1, 0])
    sparse = keras.losses.SparseCategoricalCrossentropy()(y, two)
    binary = keras.losses.BinaryCrossentropy()(tf.cast(y[:, None], tf.float32), p)
    np.testing.assert_allclose(sparse, binary, rtol=1e-5)


def test_standardize_seed_is_keras_default_plus_separators_to_spaces():
    from projects.sentiment_lstm.layers import standardize_seed

    text = tf.constant("It's GREAT!<br />Really\x85good\u2028film")
    # Keras's default keeps U+0085 and U+2028 inside tokens; the seed's variant splits there.
    assert standardize_seed(text).numpy().split() == b"its greatbr really good film".split()
