"""Small layers the sentiment models need that Keras does not ship.

- `TruncateSequence`: keeps the first `max_length` token ids. `TextVectorization` can only
  truncate by also padding every text to `max_length`, which makes the LSTM run
  `max_length` steps for every batch; cutting instead keeps each batch as short as its
  longest text.
- `MaskedGlobalMaxPooling1D`: `keras.layers.GlobalMaxPooling1D` ignores the mask, so padded
  steps (zeros) would join the max and the prediction would depend on how much padding a
  batch happens to have. This one takes the max over real tokens only.

Plus `standardize` and `standardize_seed`, text standardizations registered for
`TextVectorization`, and
`BinaryToCategorical`, which gives the seed's sigmoid output the shared `(batch, classes)` form.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="sentiment_lstm")
def standardize(texts):
    """Lower-cases, drops HTML line breaks and punctuation, and splits off "n't".

    IMDB reviews contain `<br />`; SST-2 is pre-tokenized (`do n't`, `it 's`). Rewriting
    "n't" as " not" and punctuation as spaces gives both the same tokens
    (`don't` and `do n't` -> `do not`; `it's` and `it 's` -> `it s`), so an encoder
    trained on one reads the other.
    """
    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, r"<br\s*/?>", " ")
    texts = tf.strings.regex_replace(texts, r"n't\b", " not")
    return tf.strings.regex_replace(texts, r"[^\pL\pN]+", " ")


@keras.saving.register_keras_serializable(package="sentiment_lstm")
def standardize_seed(texts):
    """The seed's standardization: Keras's default `lower_and_strip_punctuation`, plus
    Unicode separators and control characters turned into spaces.

    The addition keeps the model loadable: IMDB has a review with U+0085 (next line) inside
    a word, the default keeps it as a vocabulary token, and the `.keras` file stores the
    vocabulary one token per line, so on loading that line splits in two and Keras rejects
    the vocabulary (a repeated empty token).
    """
    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']', "")
    return tf.strings.regex_replace(texts, r"[\pZ\pC]+", " ")


@keras.saving.register_keras_serializable(package="sentiment_lstm")
class TruncateSequence(keras.layers.Layer):
    """Keeps the first `max_length` steps of a `(batch, steps, ...)` tensor.

    Args:
        max_length: the number of steps kept; shorter inputs pass unchanged.
    """

    def __init__(self, max_length, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"`max_length` must be a positive integer. Received: max_length={max_length!r}")
        self.max_length = max_length
        self.supports_masking = True

    def call(self, inputs):
        return inputs[:, : self.max_length]

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[:, : self.max_length]

    def compute_output_shape(self, input_shape):
        steps = input_shape[1]
        if steps is not None:
            steps = min(steps, self.max_length)
        return (input_shape[0], steps, *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}


@keras.saving.register_keras_serializable(package="sentiment_lstm")
class MaskedGlobalMaxPooling1D(keras.layers.Layer):
    """Max over the steps of a `(batch, steps, features)` tensor, skipping masked steps.

    A row whose steps are all masked gives zeros.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return tf.reduce_max(inputs, axis=1)
        mask = tf.cast(mask, tf.bool)[:, :, None]
        lowest = tf.constant(inputs.dtype.min, inputs.dtype)
        pooled = tf.reduce_max(tf.where(mask, inputs, lowest), axis=1)
        return tf.where(tf.reduce_any(mask, axis=1), pooled, tf.zeros_like(pooled))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="sentiment_lstm")
class BinaryToCategorical(keras.layers.Layer):
    """Turns a sigmoid probability `p` of shape `(batch, 1)` into `[1 - p, p]`.

    The seed model ends in `Dense(1, sigmoid)`; this gives it the `(batch, num_classes)`
    output every project shares, and sparse categorical cross-entropy on `[1 - p, p]` is
    exactly the binary cross-entropy of `p`.
    """

    def call(self, inputs):
        return tf.concat([1.0 - inputs, inputs], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)
