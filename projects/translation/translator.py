"""`Translator`: the base of the translation models, raw English strings in, Chinese out.

A subclass supplies the network (`encode` and `decode`); the base owns what every
architecture shares:

- the vocabularies, as `StringLookup` layers, so a saved model is self-contained;
- tokenizing English inside the model (`tokenize_source`), which is why training, `predict`
  and the SavedModel all take raw sentences;
- teacher-forced training (`call`): `{"source": (B,) string, "target_in": (B, T) ids}` ->
  next-character logits (B, T, V);
- decoding inside the graph (`translate`): greedy, or beam search, with keras-hub's samplers.
"""

import contextlib
import warnings

import keras
import tensorflow as tf

from projects.translation import text


class Translator(keras.Model):
    """English -> Chinese sequence-to-sequence model (abstract: see `encode`, `decode`).

    Args:
        source_vocabulary: English words (ids 2...; 0 pads, 1 is out-of-vocabulary).
        target_vocabulary: Chinese characters (ids 4...; after the start and end marks).
        max_source_length: English words kept per sentence.
        max_target_length: Chinese tokens per sentence including the start or end mark; also
            the longest translation `translate` produces.
        beam_size: `translate`'s default: 1 is greedy decoding, more is beam search.
    """

    def __init__(self, source_vocabulary, target_vocabulary, max_source_length=32,
                 max_target_length=48, beam_size=1, **kwargs):
        super().__init__(**kwargs)
        if max_source_length < 1 or max_target_length < 2:
            raise ValueError(
                "`max_source_length` must be at least 1 and `max_target_length` at least 2 (a "
                f"character and the end mark). Received: max_source_length={max_source_length}, "
                f"max_target_length={max_target_length}"
            )
        if beam_size < 1:
            raise ValueError(f"`beam_size` must be at least 1. Received: beam_size={beam_size}")
        self.source_vocabulary = list(source_vocabulary)
        self.target_vocabulary = list(target_vocabulary)
        self.max_source_length = int(max_source_length)
        self.max_target_length = int(max_target_length)
        self.beam_size = int(beam_size)
        self.source_lookup = text.lookup(self.source_vocabulary, target=False, name="source_lookup")
        self.target_strings = text.lookup(self.target_vocabulary, target=True, invert=True,
                                          name="target_strings")
        self.source_vocabulary_size = len(self.source_vocabulary) + 2
        self.target_vocabulary_size = len(self.target_vocabulary) + 4

    # --- What a subclass supplies ---

    def encode(self, source_ids, training=None):
        """(B, S) English ids (0 = padding) -> the decoder's state: a tuple of tensors."""
        raise NotImplementedError

    def decode(self, state, target_in, training=None):
        """`encode`'s state and (B, T) Chinese ids so far -> (B, T, V) next-token logits.

        Position t may only see `target_in[:, :t + 1]`.
        """
        raise NotImplementedError

    # --- Shared ---

    def tokenize_source(self, sentences):
        """1-D `tf.string` -> (B, S) int32 ids, padded with 0 to the longest (S >= 1)."""
        words = text.english_words(sentences)[:, : self.max_source_length]
        ids = tf.cast(self.source_lookup(words), tf.int32).to_tensor(default_value=text.PAD_ID)
        width = tf.shape(ids)[1]
        return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - width, 0)]])  # all-empty batches

    def call(self, inputs, training=None):
        state = self.encode(self.tokenize_source(inputs["source"]), training=training)
        return self.decode(state, inputs["target_in"], training=training)

    def translate(self, sentences, beam_size=None):
        """1-D `tf.string` English -> 1-D `tf.string` Chinese, decoded in the graph.

        Starts from the start mark and appends the most likely character (greedy), or keeps
        the `beam_size` most likely sequences (beam search), until every sentence has its end
        mark or `max_target_length` tokens. A finished sentence only appends padding, at no
        cost to its score. Padding, out-of-vocabulary and the start mark are never chosen.
        """
        import keras_hub

        beam_size = self.beam_size if beam_size is None else int(beam_size)
        source_ids = self.tokenize_source(sentences)
        state = self.encode(source_ids, training=False)
        batch = tf.shape(source_ids)[0]
        prompt = tf.concat(
            [tf.fill([batch, 1], text.START_ID),
             tf.zeros([batch, self.max_target_length - 1], tf.int32)], axis=1)
        vocabulary_size = self.target_vocabulary_size
        never = tf.constant([text.PAD_ID, text.OOV_ID, text.START_ID])
        never = tf.reduce_sum(tf.one_hot(never, vocabulary_size), axis=0) * -1e9  # (V,)
        only_padding = tf.one_hot(text.PAD_ID, vocabulary_size, on_value=0.0, off_value=-1e9)

        def next_token(prompt, state, index):
            logits = self.decode(state, prompt[:, :index], training=False)[:, -1, :]
            finished = tf.reduce_any(tf.equal(prompt[:, :index], text.END_ID), axis=1)
            logits = tf.where(finished[:, None], only_padding, tf.cast(logits, tf.float32) + never)
            return logits, None, state

        if beam_size > 1:
            sampler = keras_hub.samplers.BeamSampler(num_beams=beam_size)
        else:
            sampler = keras_hub.samplers.GreedySampler()
        with _one_key_attention_is_fine():
            ids = sampler(next_token, prompt, cache=state, index=1, stop_token_ids=[text.END_ID])
        return self.detokenize(ids[:, 1:])

    def detokenize(self, ids):
        """(B, T) Chinese ids -> 1-D `tf.string`, up to the first end mark, marks dropped."""
        ids = tf.cast(ids, tf.int32)
        before_end = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, text.END_ID), tf.int32), axis=1), 0)
        keep = before_end & (ids > text.END_ID)
        chars = tf.where(keep, self.target_strings(ids), "")
        return tf.strings.reduce_join(chars, axis=1)

    # --- Building and saving ---

    def build(self, input_shape=None):
        """Creates the variables by running the model once on a tiny batch."""
        if self.built:
            return
        with _one_key_attention_is_fine():
            self.call({"source": tf.constant(["a"]), "target_in": tf.constant([[text.START_ID]])})
        self.built = True

    def build_from_config(self, config):
        self.build()

    def get_config(self):
        config = super().get_config()
        config.update({
            "source_vocabulary": self.source_vocabulary,
            "target_vocabulary": self.target_vocabulary,
            "max_source_length": self.max_source_length,
            "max_target_length": self.max_target_length,
            "beam_size": self.beam_size,
        })
        return config


@contextlib.contextmanager
def _one_key_attention_is_fine():
    """Hides Keras's "softmax over an axis of size 1" warning: the first decoding step (and
    the one-word build batch) attends over a single position, which is correct."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are using a softmax over axis")
        yield
