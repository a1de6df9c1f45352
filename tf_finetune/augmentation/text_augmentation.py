"""EDA-style text augmentation (Wei & Zou 2019) as Keras layers on `tf.string` tensors.

"EDA: Easy Data Augmentation Techniques for Boosting Performance on Text Classification"
has four operations; the two that need no word list are here: random deletion (RD) and
random swap (RS). They run on raw strings, eagerly or inside a `tf.data` pipeline, before
a model whose first layer is `keras.layers.TextVectorization`:

```python
from tf_finetune.augmentation.text_augmentation import TextAugmentation

aug = TextAugmentation(word_deletion=0.1, word_swap=0.1, seed=0)
train = (
    tf.data.Dataset.from_tensor_slices((reviews, labels))
    .batch(32)
    .map(lambda text, label: (aug(text, training=True), label))
)
model.fit(train, ...)  # model = TextVectorization -> Embedding -> ...
```

Layers (each takes a 1-D batch `[batch]` of `tf.string` or a scalar string and returns
the same shape):

| layer | what it does per text of n words (`tf.strings.split`, i.e. on whitespace) |
| --- | --- |
| `RandomWordDeletion(rate)` | deletes each word independently with probability `rate`; if all would go, keeps one word chosen uniformly at random (as EDA does), so no text becomes empty |
| `RandomWordSwap(rate)` | `num_swaps(n, rate) = max(1, round(rate * n))` times, exchanges the words at two distinct random positions (EDA's `random_swap`; EDA truncates `int(rate * n)` where this rounds, half to even as Python's `round`) |
| `TextAugmentation(word_deletion, word_swap)` | deletion, then swap, each skipped when its rate is 0 |

A text of fewer than two words is returned unchanged; changed texts have their words joined
by single spaces. A rate must be in [0, 1); rate 0 is the identity. With `training=False` the
input is returned as it is. Each call draws one seed from a `tf.random.Generator` (an atomic
op, safe in a parallel `tf.data` map) or takes the caller's `seed=[a, b]`, and draws every
random number of the call statelessly from it. See docs/augmentation.md for the details.

Why not keras-hub's `RandomDeletion` and `RandomSwap` (keras-hub 0.32), which do the same on
token tensors: measured on 20,000 SST-2 sentences in a `tf.data` map on 2 CPU cores
(`benchmarks/text_augmentation.py`), these layers ran at 40,000-56,000 texts/s and keras-hub's
at 7,300-8,500 (on `tf.strings.split` words, joined back); with a fixed seed these repeat
exactly in a serial map and keras-hub's do not (its deletion picks positions with a stateful
`tf.random.shuffle`), and it has no per-call seed, which a resumed run needs to replay an
epoch's augmentation; and keras-hub's deletion can delete every word (148 of the 20,000
texts came out empty), where EDA keeps one.
"""

import math
import numbers

import keras
import tensorflow as tf

from tf_finetune.augmentation import seeds


# -------------------------------------------------------------------- the operations
# Stateless functions of a batch `texts` ([batch] tf.string) and a seed ([2] ints).


def _positions(words):
    """Index of each word inside its own text, aligned with `words.flat_values`."""
    flat = tf.range(tf.shape(words.flat_values, out_type=tf.int64)[0])
    return flat - tf.gather(words.row_starts(), words.value_rowids())


def _join(texts, words, lengths):
    """Words joined by single spaces; texts of fewer than 2 words returned as they were."""
    joined = tf.strings.reduce_join(words, axis=1, separator=" ")
    return tf.where(lengths < 2, texts, joined)


def delete_words(texts, rate, seed):
    """`RandomWordDeletion` on a `[batch]` string tensor, statelessly from `seed`."""
    words = tf.strings.split(texts)
    lengths = words.row_lengths()
    rows = words.value_rowids()
    drop_seed, rescue_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    count = tf.shape(words.flat_values)[0]
    keep = tf.random.stateless_uniform([count], drop_seed) >= rate
    kept = tf.math.bincount(
        tf.cast(tf.boolean_mask(rows, keep), tf.int32), minlength=tf.size(lengths), dtype=tf.int64
    )
    # A text losing every word keeps one, uniformly at random (EDA's rule).
    draw = tf.random.stateless_uniform(tf.shape(lengths), rescue_seed, dtype=tf.float64)
    pick = tf.minimum(
        tf.cast(draw * tf.cast(lengths, tf.float64), tf.int64), tf.maximum(lengths - 1, 0)
    )
    rescue = tf.gather(kept == 0, rows) & tf.equal(_positions(words), tf.gather(pick, rows))
    kept_words = tf.ragged.boolean_mask(words, words.with_flat_values(keep | rescue))
    return _join(texts, kept_words, lengths)


def num_swaps(lengths, rate):
    """How many swaps `RandomWordSwap` makes in texts of `lengths` words.

    `max(1, round(rate * n))` (Python's `round`: halves to even) for `n >= 2` and
    `rate > 0`, else 0. `lengths` is an int64 tensor; returns int64 of the same shape.
    """
    lengths = tf.convert_to_tensor(lengths, tf.int64)
    swaps = tf.cast(tf.round(rate * tf.cast(lengths, tf.float64)), tf.int64)
    swaps = tf.maximum(swaps, 1 if rate > 0 else 0)
    return tf.where(lengths >= 2, swaps, tf.zeros_like(swaps))


def swap_words(texts, rate, seed):
    """`RandomWordSwap` on a `[batch]` string tensor, statelessly from `seed`."""
    words = tf.strings.split(texts)
    lengths = words.row_lengths()
    swaps = num_swaps(lengths, rate)
    zero = tf.zeros([1], tf.int64)
    steps = tf.reduce_max(tf.concat([swaps, zero], 0))
    width = tf.reduce_max(tf.concat([lengths, zero], 0))
    batch = tf.shape(lengths, out_type=tf.int64)[0]
    # Swap `s` exchanges positions first[s] and second[s] != first[s] of each text.
    draws = tf.random.stateless_uniform(tf.stack([2, steps, batch]), seed, dtype=tf.float64)
    n = tf.cast(lengths, tf.float64)
    last = tf.maximum(lengths - 1, 0)
    first = tf.minimum(tf.cast(draws[0] * n, tf.int64), last)
    offset = tf.minimum(tf.cast(draws[1] * (n - 1.0), tf.int64), tf.maximum(last - 1, 0))
    second = (first + 1 + offset) % tf.maximum(lengths, 1)
    columns = tf.range(width)[tf.newaxis]

    def swap(step, order):  # order[b, i]: which word of text b now stands at position i
        active = (step < swaps)[:, tf.newaxis]
        a, b = first[step][:, tf.newaxis], second[step][:, tf.newaxis]
        at_a = tf.gather(order, a, batch_dims=1)
        at_b = tf.gather(order, b, batch_dims=1)
        order = tf.where(active & tf.equal(columns, a), at_b, order)
        order = tf.where(active & tf.equal(columns, b), at_a, order)
        return step + 1, order

    _, order = tf.while_loop(
        lambda step, _: step < steps,
        swap,
        (tf.constant(0, tf.int64), tf.tile(columns, tf.stack([batch, 1]))),
    )
    order = tf.RaggedTensor.from_tensor(order, lengths=lengths).flat_values
    source = order + tf.gather(words.row_starts(), words.value_rowids())
    swapped = words.with_flat_values(tf.gather(words.flat_values, source))
    return _join(texts, swapped, lengths)


# ---------------------------------------------------------------------- validation


def _rate(name, value):
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0 <= value < 1
    ):
        raise ValueError(
            f"`{name}` must be a number in [0, 1) (a probability per word or a fraction "
            f"of the words). Received: {name}={value!r}"
        )
    return float(value)


def _seed(value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"`seed` must be an int or None. Received: seed={value!r}")
    return value


# -------------------------------------------------------------------------- layers


class _TextLayer(keras.layers.Layer):
    """Plumbing shared by the text layers: arguments, seeding, shapes, training flag.

    Subclasses set their rate attributes, list them in `_ARGS` (the constructor
    arguments besides `seed`, in order) and implement `_augment(texts, seed)` for a
    `[batch]` string tensor and a `[2]` seed tensor.
    """

    _ARGS = ()

    def __init__(self, seed=None, **kwargs):
        unknown = sorted(set(kwargs) - {"name", "trainable"})
        if unknown:
            raise ValueError(
                f"Unknown argument(s) {', '.join(unknown)} for {type(self).__name__}. "
                f"Valid arguments: {', '.join((*self._ARGS, 'seed'))}, name, trainable. "
                "Received: " + ", ".join(f"{k}={kwargs[k]!r}" for k in unknown)
            )
        super().__init__(**kwargs)
        self.supports_jit = False
        self.seed = _seed(seed)
        # One atomic draw per call (see "Randomness" in the module docstring).
        self._rng = seeds.generator(seed)

    def _augment(self, texts, seed):
        raise NotImplementedError

    def _is_identity(self):
        return not any(getattr(self, name) for name in self._ARGS)

    def call(self, inputs, training=True, seed=None):
        """Augments `inputs` when `training`.

        `seed`: a `[2]` integer tensor that fixes this call's random draws (stateless); by
        default each call draws one from the layer's generator.
        """
        texts = tf.convert_to_tensor(inputs)
        if texts.dtype != tf.string or texts.shape.rank not in (0, 1):
            raise ValueError(
                f"{type(self).__name__} takes a scalar or a 1-D batch of tf.string. "
                f"Received: inputs.dtype={texts.dtype.name}, inputs.shape={texts.shape}"
            )
        if self._is_identity():
            return texts
        if isinstance(training, tf.Tensor):
            return tf.cond(
                training, lambda: self._augment_any_rank(texts, seed), lambda: tf.identity(texts)
            )
        return self._augment_any_rank(texts, seed) if training else texts

    def _augment_any_rank(self, texts, seed=None):
        seed = self._rng.make_seeds(1)[:, 0] if seed is None else tf.cast(seed, tf.int64)
        if texts.shape.rank == 0:
            return self._augment(texts[tf.newaxis], seed)[0]
        return tf.ensure_shape(self._augment(texts, seed), texts.shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs, training=True, seed=None):
        return keras.KerasTensor(inputs.shape, dtype="string")

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            **{name: getattr(self, name) for name in self._ARGS},
            "seed": self.seed,
        }


class _RateLayer(_TextLayer):
    """A layer with one `rate`, applying the stateless operation `_operation`.

    Args:
        rate: in [0, 1); 0 is the identity. See the subclass for its meaning.
        seed: int for a reproducible sequence of outputs, or None.
        name, trainable: as for any Keras layer.
    """

    _ARGS = ("rate",)
    _operation = None  # f(texts, rate, seed), set by subclasses

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _rate("rate", rate)

    def _augment(self, texts, seed):
        return type(self)._operation(texts, self.rate, seed)


@keras.saving.register_keras_serializable(package="tf_finetune")
class RandomWordDeletion(_RateLayer):
    """EDA's random deletion: each word is deleted with probability `rate`.

    A text whose every word would be deleted keeps one of them, chosen uniformly at
    random. Kept words stay in order, joined by single spaces; texts of fewer than two
    words are returned unchanged. Arguments: `rate` (probability of deleting each word,
    in [0, 1)), `seed` (int or None; see the module docstring), `name`, `trainable`.
    """

    _operation = delete_words


@keras.saving.register_keras_serializable(package="tf_finetune")
class RandomWordSwap(_RateLayer):
    """EDA's random swap: `max(1, round(rate * n))` swaps of two words in a text of n.

    Each swap exchanges the words at two distinct random positions, so the text keeps
    its words (as a multiset) and their number; texts of fewer than two words are
    returned unchanged; `num_swaps` gives the count. Arguments: `rate` (number of swaps
    as a fraction of the number of words, in [0, 1)), `seed` (int or None; see the
    module docstring), `name`, `trainable`.
    """

    _operation = swap_words


@keras.saving.register_keras_serializable(package="tf_finetune")
class TextAugmentation(_TextLayer):
    """Random word deletion, then random word swap, as one layer.

    The identity when both rates are 0. The two steps draw from one seed per call,
    split statelessly (see the module docstring).

    Args:
        word_deletion: `RandomWordDeletion`'s rate, in [0, 1); 0 skips the step.
        word_swap: `RandomWordSwap`'s rate, in [0, 1); 0 skips the step.
        seed: int for a reproducible sequence of outputs, or None.
        name, trainable: as for any Keras layer.
    """

    _ARGS = ("word_deletion", "word_swap")

    def __init__(self, word_deletion=0.0, word_swap=0.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.word_deletion = _rate("word_deletion", word_deletion)
        self.word_swap = _rate("word_swap", word_swap)

    def _augment(self, texts, seed):
        fold_in = tf.random.experimental.stateless_fold_in
        if self.word_deletion:
            texts = delete_words(texts, self.word_deletion, fold_in(seed, 1))
        if self.word_swap:
            texts = swap_words(texts, self.word_swap, fold_in(seed, 2))
        return texts
