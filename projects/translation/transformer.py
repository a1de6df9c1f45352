"""`TransformerTranslator`: a small encoder-decoder Transformer from keras-hub layers."""

import keras
import keras_hub
import tensorflow as tf

from projects.translation import text
from projects.translation.translator import Translator


@keras.saving.register_keras_serializable(package="translation")
class TransformerTranslator(Translator):
    """English words -> `TransformerEncoder`s; Chinese characters so far -> causal
    `TransformerDecoder`s that also attend to the encoder -> next-character logits.

    Args:
        embedding_dim: token and position embedding size (the model width).
        num_layers: encoder layers, and as many decoder layers.
        num_heads: attention heads.
        intermediate_dim: width of each layer's feed-forward part.
        dropout: dropout in every layer.
        **kwargs: `Translator`'s (vocabularies, lengths, beam size).
    """

    def __init__(self, source_vocabulary, target_vocabulary, embedding_dim=256, num_layers=2,
                 num_heads=4, intermediate_dim=1024, dropout=0.1, **kwargs):
        super().__init__(source_vocabulary, target_vocabulary, **kwargs)
        self.embedding_dim = int(embedding_dim)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.source_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            self.source_vocabulary_size, self.max_source_length, self.embedding_dim,
            name="source_embedding")
        self.target_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            self.target_vocabulary_size, self.max_target_length, self.embedding_dim,
            name="target_embedding")
        layer_args = dict(intermediate_dim=self.intermediate_dim, num_heads=self.num_heads,
                          dropout=self.dropout)
        self.encoder_layers = [keras_hub.layers.TransformerEncoder(**layer_args, name=f"encoder_{i}")
                               for i in range(self.num_layers)]
        self.decoder_layers = [keras_hub.layers.TransformerDecoder(**layer_args, name=f"decoder_{i}")
                               for i in range(self.num_layers)]
        self.output_dropout = keras.layers.Dropout(self.dropout, name="output_dropout")
        self.logits = keras.layers.Dense(self.target_vocabulary_size, name="logits")

    def encode(self, source_ids, training=None):
        mask = tf.not_equal(source_ids, text.PAD_ID)
        x = self.source_embedding(source_ids)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=mask, training=training)
        return (x, mask)

    def decode(self, state, target_in, training=None):
        memory, memory_mask = state
        y = self.target_embedding(target_in)
        for layer in self.decoder_layers:
            y = layer(y, encoder_sequence=memory, decoder_padding_mask=tf.not_equal(target_in, text.PAD_ID),
                      encoder_padding_mask=memory_mask, use_causal_mask=True, training=training)
        return self.logits(self.output_dropout(y, training=training))

    def get_config(self):
        config = super().get_config()
        config.update({
            "embedding_dim": self.embedding_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
        })
        return config
