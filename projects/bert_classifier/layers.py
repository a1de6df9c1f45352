"""Layers of bert_classifier: tokenizing raw strings inside the model."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="bert_classifier")
class BertTokenize(keras.layers.Layer):
    """Raw strings -> `token_ids` and `padding_mask`, padded to the batch's longest text.

    Each text becomes `[CLS] word pieces [SEP]`, cut to `max_length` tokens. Unlike keras-hub's
    `BertTextClassifierPreprocessor`, which pads every text to a fixed `sequence_length`, the
    batch is only as long as its longest text: most SST-2 phrases are about 10 tokens, and
    every padding token costs as much as a real one in each transformer layer.

    Args:
        tokenizer: a `keras_hub.models.BertTokenizer` (the preset's WordPiece vocabulary).
        max_length: tokens kept per text, including `[CLS]` and `[SEP]` (at least 3).
    """

    def __init__(self, tokenizer, max_length=128, **kwargs):
        super().__init__(**kwargs)
        if int(max_length) < 3:
            raise ValueError(
                f"`max_length` must be at least 3 ([CLS], a token, [SEP]). Received: max_length={max_length}"
            )
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self._convert_input_args = False  # keep tf.string tensors as they are
        self._allow_non_tensor_positional_args = True
        self.supports_jit = False
        self.built = True

    def call(self, texts):
        texts = tf.convert_to_tensor(texts)
        if tf.executing_eagerly():
            # keras-hub tokenizers run their TensorFlow (tensorflow-text) path only when traced.
            return tf.function(self._tokenize)(texts)
        return self._tokenize(texts)

    def _tokenize(self, texts):
        pieces = tf.cast(self.tokenizer(texts), tf.int32)  # (B, None) ragged
        pieces = pieces[:, : self.max_length - 2]
        batch = pieces.nrows()
        pieces = tf.concat(
            [tf.fill([batch, 1], self.tokenizer.cls_token_id), pieces,
             tf.fill([batch, 1], self.tokenizer.sep_token_id)],
            axis=1,
        )
        token_ids = pieces.to_tensor(default_value=self.tokenizer.pad_token_id)  # (B, T)
        padding_mask = tf.sequence_mask(pieces.row_lengths(), tf.shape(token_ids)[1], tf.int32)
        return {"token_ids": token_ids, "padding_mask": padding_mask}

    def compute_output_spec(self, texts):
        spec = keras.KerasTensor((texts.shape[0], None), dtype="int32")
        return {"token_ids": spec, "padding_mask": keras.KerasTensor(spec.shape, dtype="int32")}

    def get_config(self):
        config = super().get_config()
        config.update({
            "tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
            "max_length": self.max_length,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="bert_classifier")
class ClsTransformerEncoder(keras.layers.Wrapper):
    """A keras-hub `TransformerEncoder` computed at the first ([CLS]) position only.

    BERT's classifier reads its last layer at [CLS] alone, so that layer needs only [CLS]'s
    query. Keys and values still come from every token, but the attention output, both
    feed-forward matmuls and the layer norms run on 1 position instead of T, which makes the
    layer several times cheaper. The weights are the wrapped layer's, and the result equals
    its output at [CLS].

    Args:
        layer: the `keras_hub.layers.TransformerEncoder` to run (e.g. BERT's last layer).

    Call arguments: `inputs` (B, T, D), `padding_mask` (B, T). Returns (B, D).
    """

    def call(self, inputs, padding_mask=None, training=None):
        encoder = self.layer  # its sublayers, in the order of TransformerEncoder.call
        cls = inputs[:, :1, :]  # (B, 1, D)
        mask = None
        if padding_mask is not None:
            mask = keras.ops.expand_dims(keras.ops.cast(padding_mask, "bool"), axis=1)  # (B, 1, T)
        # Self attention block: [CLS] attends to every token.
        residual = cls
        query, values = cls, inputs
        if encoder.normalize_first:
            query = encoder._self_attention_layer_norm(cls)
            values = encoder._self_attention_layer_norm(inputs)
        x = encoder._self_attention_layer(query=query, value=values, attention_mask=mask, training=training)
        x = encoder._self_attention_dropout(x, training=training)
        x = x + residual
        if not encoder.normalize_first:
            x = encoder._self_attention_layer_norm(x)
        # Feedforward block.
        residual = x
        if encoder.normalize_first:
            x = encoder._feedforward_layer_norm(x)
        x = encoder._feedforward_intermediate_dense(x)
        x = encoder._feedforward_output_dense(x)
        x = encoder._feedforward_dropout(x, training=training)
        x = x + residual
        if not encoder.normalize_first:
            x = encoder._feedforward_layer_norm(x)
        return x[:, 0, :]

    def compute_output_shape(self, inputs_shape, padding_mask_shape=None):
        return (inputs_shape[0], inputs_shape[-1])
