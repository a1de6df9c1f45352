"""Tests for tf_finetune.text_augmentation (EDA random word deletion and swap)."""

import collections
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.helpers import assert_saves_and_reloads  # noqa: E402
from tf_finetune.augmentation.text_augmentation import (  # noqa: E402
    RandomWordDeletion,
    RandomWordSwap,
    TextAugmentation,
    num_swaps,
)

# Odd whitespace on purpose: inference must not normalise it.
TEXTS = [
    "  The movie was\tgreat ,  really great!\n",
    "one two three four five six seven eight nine ten eleven twelve",
    "word",
    "",
    "   ",
    "two  words",
]


def all_layers(rate=0.5, seed=0):
    return [
        RandomWordDeletion(rate, seed=seed),
        RandomWordSwap(rate, seed=seed),
        TextAugmentation(word_deletion=rate, word_swap=rate, seed=seed),
    ]


def numbered(n, prefix="w"):
    """One text of n distinct words: w0 w1 ... w{n-1}."""
    return " ".join(f"{prefix}{i}" for i in range(n))


def decode(tensor):
    return [t.decode() for t in np.atleast_1d(tensor.numpy())]


def is_subsequence(small, big):
    it = iter(big)
    return all(word in it for word in small)


# ------------------------------------------------------------------------ identity


@pytest.mark.parametrize("layer", all_layers(), ids=lambda l: type(l).__name__)
def test_inference_is_identity_byte_for_byte(layer):
    x = tf.constant(TEXTS)
    for training in (False, tf.constant(False)):
        out = layer(x, training=training)
        assert out.dtype == tf.string and out.shape == x.shape
        assert out.numpy().tolist() == x.numpy().tolist()
    assert layer(x[0], training=False).numpy() == x[0].numpy()
    # And it does augment when training, so the identity above is not vacuous.
    assert layer(x, training=tf.constant(True)).numpy().tolist() != x.numpy().tolist()


@pytest.mark.parametrize(
    "layer",
    [RandomWordDeletion(0.0), RandomWordSwap(0.0), TextAugmentation(), TextAugmentation(0, 0)],
    ids=lambda l: type(l).__name__,
)
def test_rate_zero_is_identity(layer):
    x = tf.constant(TEXTS)
    for _ in range(3):
        assert layer(x, training=True).numpy().tolist() == x.numpy().tolist()


@pytest.mark.parametrize("layer", all_layers(rate=0.9), ids=lambda l: type(l).__name__)
def test_texts_of_fewer_than_two_words_unchanged(layer):
    short = ["word", "  word\t", "", "   ", "\n"]
    x = tf.constant(short * 20)
    assert decode(layer(x, training=True)) == short * 20


def test_changed_text_is_joined_with_single_spaces():
    out = decode(RandomWordSwap(0.5, seed=0)(tf.constant(["a\t\tb  c\nd "]), training=True))[0]
    assert " ".join(out.split()) == out
    assert sorted(out.split()) == ["a", "b", "c", "d"]


# ------------------------------------------------------------------------ deletion


def test_deletion_only_removes_and_keeps_order():
    texts = [numbered(n, prefix=f"t{n}_") for n in range(2, 40)]
    layer = RandomWordDeletion(0.4, seed=1)
    for _ in range(5):
        out = decode(layer(tf.constant(texts), training=True))
        for before, after in zip(texts, out):
            assert 1 <= len(after.split()) <= len(before.split())
            assert is_subsequence(after.split(), before.split()), (before, after)


def test_deletion_never_empties_a_text_and_rescues_any_word():
    layer = RandomWordDeletion(0.99, seed=2)
    x = tf.constant(["a b c d"] * 200 + ["x y"] * 50)
    out = decode(layer(x, training=True))
    assert all(text.strip() for text in out)
    assert all(len(text.split()) == 1 for text in out[:200])  # 0.01**3 chance otherwise
    # The word kept when all would go is chosen at random, not always the first.
    assert set(out[:200]) == {"a", "b", "c", "d"}


def test_deletion_rate_matches_observed_fraction():
    texts = [numbered(100, prefix=f"r{i}_") for i in range(100)]  # 10,000 words
    out = decode(RandomWordDeletion(0.3, seed=3)(tf.constant(texts), training=True))
    kept = sum(len(text.split()) for text in out)
    assert abs((10_000 - kept) / 10_000 - 0.3) < 0.03


# ---------------------------------------------------------------------------- swap


def permutation(before, after):
    """Where each word of `after` came from; words of `before` must be distinct."""
    index = {word: i for i, word in enumerate(before.split())}
    return [index[word] for word in after.split()]


def parity(perm):
    seen, transpositions = set(), 0
    for start in range(len(perm)):
        length, i = 0, start
        while i not in seen:
            seen.add(i)
            i = perm[i]
            length += 1
        transpositions += max(length - 1, 0)
    return transpositions % 2


def test_num_swaps_formula():
    lengths = list(range(0, 60))
    for rate in (0.01, 0.05, 0.1, 0.25, 0.3, 0.5, 0.75, 0.99):
        got = num_swaps(tf.constant(lengths, tf.int64), rate).numpy().tolist()
        want = [max(1, round(rate * n)) if n >= 2 else 0 for n in lengths]
        assert got == want, rate
    assert num_swaps(tf.constant([0, 1, 5, 50], tf.int64), 0.0).numpy().tolist() == [0] * 4
    assert num_swaps(tf.constant([10], tf.int64), 0.25).numpy().tolist() == [2]  # round(2.5)


@pytest.mark.parametrize("rate,n", [(0.01, 12), (0.1, 30), (0.25, 10), (0.3, 10), (0.5, 9)])
def test_swap_makes_num_swaps_transpositions_of_distinct_positions(rate, n):
    swaps = max(1, round(rate * n))
    text = numbered(n)
    layer = RandomWordSwap(rate, seed=4)
    for after in decode(layer(tf.constant([text] * 50), training=True)):
        perm = permutation(text, after)
        assert sorted(perm) == list(range(n))
        # k swaps of two distinct positions: a permutation of parity k moving <= 2k words.
        assert parity(perm) == swaps % 2
        moved = sum(i != p for i, p in enumerate(perm))
        assert moved <= 2 * swaps
        if swaps % 2:  # an odd permutation is never the identity
            assert moved >= 2
        if swaps == 1:
            assert moved == 2


def test_swap_preserves_words_and_changes_order_of_long_texts():
    texts = [numbered(20, prefix=f"s{i}_") for i in range(30)] + ["the the the cat cat sat"]
    layer = RandomWordSwap(0.25, seed=5)  # 5 swaps: an odd permutation, never the identity
    out = decode(layer(tf.constant(texts), training=True))
    for before, after in zip(texts, out):
        assert collections.Counter(after.split()) == collections.Counter(before.split())
        assert len(after.split()) == len(before.split())
    assert all(before != after for before, after in zip(texts[:-1], out[:-1]))


def test_composite_deletes_then_swaps():
    text = numbered(50)
    layer = TextAugmentation(word_deletion=0.3, word_swap=0.2, seed=6)
    outs = decode(layer(tf.constant([text] * 20), training=True))
    for after in outs:
        words = after.split()
        assert len(set(words)) == len(words) and set(words) <= set(text.split())
        assert 20 <= len(words) < 50
    assert any(not is_subsequence(after.split(), text.split()) for after in outs)  # swapped


# ---------------------------------------------------------- shapes, tf.data, seeding


@pytest.mark.parametrize("layer", all_layers(rate=0.3), ids=lambda l: type(l).__name__)
def test_eager_scalar_and_tf_data(layer):
    x = tf.constant(TEXTS * 3)
    assert layer(x, training=True).shape == x.shape
    scalar = layer(tf.constant(TEXTS[1]), training=True)
    assert scalar.shape == () and scalar.dtype == tf.string
    assert layer(np.array(TEXTS), training=True).shape == (len(TEXTS),)

    batched = tf.data.Dataset.from_tensor_slices(x).batch(4)
    augmented = batched.map(lambda t: layer(t, training=True))
    assert augmented.element_spec.shape.as_list() == [None]
    assert [b.shape for b in augmented] == [b.shape for b in batched]
    single = tf.data.Dataset.from_tensor_slices(x).map(lambda t: layer(t, training=True))
    assert single.element_spec.shape == ()
    assert len(list(single)) == len(TEXTS) * 3


@pytest.mark.parametrize("cls", [RandomWordDeletion, RandomWordSwap, TextAugmentation])
def test_same_seed_same_sequence(cls):
    x = tf.constant([numbered(30)] * 4)

    def run(seed):
        layer = cls(0.3, seed=seed)
        return [decode(layer(x, training=True)) for _ in range(3)]

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    assert first[0] != first[1]  # successive calls differ
    assert run(None) != run(None)


def test_same_seed_same_sequence_in_tf_data():
    x = tf.constant([numbered(30)] * 4)

    def run(seed):
        layer = TextAugmentation(word_deletion=0.2, word_swap=0.2, seed=seed)
        ds = tf.data.Dataset.from_tensor_slices(x).batch(2).repeat(2)
        return [decode(b) for b in ds.map(lambda t: layer(t, training=True))]

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    assert len({tuple(batch) for batch in first}) == 4  # each batch, each epoch differs


def test_parallel_map_draws_differ():
    layer = TextAugmentation(word_deletion=0.2, word_swap=0.2, seed=0)
    ds = tf.data.Dataset.from_tensor_slices(tf.constant([numbered(40)] * 48)).batch(2)
    out = ds.map(lambda t: layer(t, training=True), num_parallel_calls=2)
    texts = [text for batch in out for text in decode(batch)]
    assert len(texts) == 48 and len(set(texts)) == 48


def test_bad_inputs_rejected():
    with pytest.raises(ValueError, match="Received: inputs.dtype=float32"):
        RandomWordSwap(0.1)(tf.constant([1.0]), training=True)
    with pytest.raises(ValueError, match=r"Received: .*inputs.shape=\(1, 1\)"):
        RandomWordSwap(0.1)(tf.constant([["a b"]]), training=True)


# ------------------------------------------------------------ validation and config


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), "0.1", None, True])
def test_invalid_rate_raises(rate):
    for make, name in (
        (lambda: RandomWordDeletion(rate), "rate"),
        (lambda: RandomWordSwap(rate), "rate"),
        (lambda: TextAugmentation(word_deletion=rate), "word_deletion"),
        (lambda: TextAugmentation(word_swap=rate), "word_swap"),
    ):
        with pytest.raises(ValueError, match=f"Received: {name}={rate!r}"):
            make()


def test_invalid_seed_and_unknown_argument_raise():
    with pytest.raises(ValueError, match="Received: seed=1.5"):
        RandomWordSwap(0.1, seed=1.5)
    with pytest.raises(ValueError, match="Received: dtype='float16'"):
        RandomWordDeletion(0.1, dtype="float16")


@pytest.mark.parametrize(
    "layer,args",
    [
        (RandomWordDeletion(0.2, seed=3, name="drop"), {"rate": 0.2}),
        (RandomWordSwap(0.1), {"rate": 0.1}),
        (TextAugmentation(0.1, 0.2, seed=1), {"word_deletion": 0.1, "word_swap": 0.2}),
    ],
    ids=["deletion", "swap", "composite"],
)
def test_get_config_round_trip(layer, args):
    config = layer.get_config()
    assert config == {"name": layer.name, "trainable": True, **args, "seed": layer.seed}
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"tf_finetune>{type(layer).__name__}"
    assert keras.saving.get_registered_object(serialized["registered_name"]) is type(layer)
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(layer) and restored.get_config() == config
    if layer.seed is not None:  # same seed: same outputs as a fresh original
        x = tf.constant([numbered(25)] * 3)
        fresh = type(layer).from_config(config)
        assert decode(restored(x, training=True)) == decode(fresh(x, training=True))


def test_in_model_before_text_vectorization_and_saved(tmp_path):
    vectorize = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=6)
    vectorize.adapt(tf.constant(TEXTS))
    inputs = keras.Input(shape=(), dtype="string")
    augmented = TextAugmentation(word_deletion=0.5, word_swap=0.5, seed=0)(inputs)
    model = keras.Model(inputs, vectorize(augmented))
    x = tf.constant(TEXTS)
    expected = vectorize(x).numpy()
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)  # inference
    loaded = assert_saves_and_reloads(model, x, tmp_path, atol=0, same_config_of=TextAugmentation)
    np.testing.assert_array_equal(loaded.predict_on_batch(x), expected)
