"""How English and Chinese sentences become tokens, in TensorFlow ops (so the SavedModel can).

- English: lower-cased words; punctuation marks become words of their own, apostrophes stay
  inside words ("don't", "tom's"): `"Don't go, Tom!" -> don't go , tom !`.
- Chinese: characters, spaces dropped. Chinese is written without spaces, so characters are
  the natural unit; BLEU on Chinese is also scored per character (as sacreBLEU's `zh`
  tokenizer does for CJK characters).
"""

import tensorflow as tf

# Marks split off as their own English token.
PUNCTUATION = r"""([.,!?;:"()\[\]¿¡…])"""


def english_words(sentences):
    """1-D `tf.string` -> ragged (B, None) words."""
    text = tf.strings.lower(tf.convert_to_tensor(sentences), encoding="utf-8")
    text = tf.strings.regex_replace(text, PUNCTUATION, r" \1 ")
    return tf.strings.split(text)


def chinese_characters(sentences):
    """1-D `tf.string` -> ragged (B, None) characters, whitespace dropped."""
    chars = tf.strings.unicode_split(tf.convert_to_tensor(sentences), "UTF-8")
    return tf.ragged.boolean_mask(chars, tf.strings.strip(chars) != "")


# Token ids shared by the data pipeline and the model: 0 pads, 1 is out-of-vocabulary, then
# the target's start and end marks (which no character can be), then the vocabulary.
PAD_ID, OOV_ID, START_ID, END_ID = 0, 1, 2, 3
TARGET_MARKS = ("[start]", "[end]")


def lookup(vocabulary, *, target, invert=False, name=None):
    """A `StringLookup` from tokens to ids (or back) in the layout above.

    `target=True` puts the start and end marks before the vocabulary.
    """
    import keras

    tokens = [*TARGET_MARKS, *vocabulary] if target else list(vocabulary)
    return keras.layers.StringLookup(vocabulary=tokens, mask_token="", num_oov_indices=1,
                                     invert=invert, name=name)
