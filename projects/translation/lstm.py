"""`LstmTranslator`: the seed's LSTM encoder-decoder (no attention)."""

import keras
import tensorflow as tf

from projects.translation import text
from projects.translation.translator import Translator


@keras.saving.register_keras_serializable(package="translation")
class LstmTranslator(Translator):
    """The classic Keras seq2seq: an LSTM reads the English words and its final state starts
    a second LSTM that writes the Chinese characters, one softmax per step.

    The whole sentence passes through one state vector, which is why this baseline falls
    behind on longer sentences (the Transformer's decoder attends to every English word).

    Args:
        embedding_dim: word and character embedding size.
        units: LSTM units of the encoder and the decoder.
        dropout: dropout on the embeddings and before the softmax.
        **kwargs: `Translator`'s (vocabularies, lengths, beam size).
    """

    def __init__(self, source_vocabulary, target_vocabulary, embedding_dim=256, units=512,
                 dropout=0.2, **kwargs):
        super().__init__(source_vocabulary, target_vocabulary, **kwargs)
        self.embedding_dim = int(embedding_dim)
        self.units = int(units)
        self.dropout = float(dropout)
        self.source_embedding = keras.layers.Embedding(self.source_vocabulary_size, self.embedding_dim,
                                                       name="source_embedding")
        self.target_embedding = keras.layers.Embedding(self.target_vocabulary_size, self.embedding_dim,
                                                       name="target_embedding")
        self.encoder = keras.layers.LSTM(self.units, return_state=True, name="encoder")
        self.decoder = keras.layers.LSTM(self.units, return_sequences=True, name="decoder")
        self.embedding_dropout = keras.layers.Dropout(self.dropout, name="embedding_dropout")
        self.output_dropout = keras.layers.Dropout(self.dropout, name="output_dropout")
        self.logits = keras.layers.Dense(self.target_vocabulary_size, name="logits")

    def encode(self, source_ids, training=None):
        x = self.embedding_dropout(self.source_embedding(source_ids), training=training)
        _, h, c = self.encoder(x, mask=tf.not_equal(source_ids, text.PAD_ID), training=training)
        return (h, c)

    def decode(self, state, target_in, training=None):
        y = self.embedding_dropout(self.target_embedding(target_in), training=training)
        y = self.decoder(y, initial_state=list(state), training=training)
        return self.logits(self.output_dropout(y, training=training))

    def get_config(self):
        config = super().get_config()
        config.update({"embedding_dim": self.embedding_dim, "units": self.units, "dropout": self.dropout})
        return config
