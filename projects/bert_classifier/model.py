"""The bert_classifier model: raw strings in, class probabilities out.

```
text (B,) string
  -> BertTokenize                      token_ids, padding_mask (B, T), T = the batch's longest text
  -> FrozenPrefix(encoder_bottom)      embeddings + the first --freeze-layers transformer layers,
                                       frozen and in inference mode -> hidden (B, T, D), mask
  -> transformer_layer_N ... _L-2      trainable
  -> ClsTransformerEncoder(layer L-1)  the last layer, computed at [CLS] only, trainable
  -> pooled_dense                      BERT's pooler (tanh), trainable
  -> dropout -> classifier             softmax over the classes
```

With `--pooling mean` the last layer runs at every position and its masked average over the
text's tokens ([CLS] and [SEP] included, as sentence-transformers does) replaces the pooler.

The layers are the preset's own (`keras_hub.models.BertBackbone`), rewired so that the frozen
bottom is one `tf_finetune.prefix_cache.FrozenPrefix` layer: the trainer computes it once and
trains the layers above on its cached outputs. With nothing frozen
(`--freeze-layers 0 --no-freeze-embeddings`) the bottom is just the (trainable) embeddings.
"""

import keras

from tf_finetune.errors import UserError
from tf_finetune.models.frozen_prefix import FrozenPrefix

from projects.bert_classifier import presets
from projects.bert_classifier.layers import BertTokenize
from projects.bert_classifier.layers import ClsTransformerEncoder


def build_model(config, data, cls_only=True):
    """The classifier for `config` and `data.class_names`, from the pretrained preset.

    `cls_only=False` runs the last trainable layer at every position, as keras-hub does (the
    speed benchmark's comparison; the result at [CLS] is the same).
    """
    backbone, tokenizer = presets.load(presets.resolve_preset(config.preset))
    num_layers = backbone.num_layers
    frozen = num_layers if config.freeze_layers == -1 else config.freeze_layers
    if frozen > num_layers:
        raise UserError(
            f"--freeze-layers {config.freeze_layers}: the preset has only {num_layers} "
            f"transformer layers; pass 0 to {num_layers}, or -1 for all."
        )
    if config.max_length > backbone.max_sequence_length:
        raise UserError(
            f"--max-length {config.max_length}: the preset's position embeddings stop at "
            f"{backbone.max_sequence_length} tokens; pass at most that."
        )

    # === Layers ===
    tokenize = BertTokenize(tokenizer, max_length=config.max_length, name="tokenize")
    bottom = encoder_bottom(backbone, frozen)
    if config.freeze_embeddings:
        bottom = FrozenPrefix(bottom)
    dropout = keras.layers.Dropout(config.dropout, name="classifier_dropout")
    classifier = keras.layers.Dense(
        len(data.class_names), activation="softmax", name="classifier",
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
    )

    # === Functional model ===
    texts = keras.Input(shape=(), dtype="string", name="text")
    hidden, padding_mask = bottom(tokenize(texts))  # (B, T, D), (B, T)
    # [CLS] is all the pooler reads.
    last_at_cls = cls_only and config.pooling == "cls" and frozen < num_layers
    for i in range(frozen, num_layers - last_at_cls):
        hidden = backbone.get_layer(f"transformer_layer_{i}")(hidden, padding_mask=padding_mask)
    if config.pooling == "mean":
        pooled = keras.layers.GlobalAveragePooling1D(name="mean_pool")(hidden, mask=padding_mask)
    else:
        if last_at_cls:
            last = backbone.get_layer(f"transformer_layer_{num_layers - 1}")
            cls = ClsTransformerEncoder(last, name=f"{last.name}_cls")(hidden, padding_mask=padding_mask)
        else:
            cls = hidden[:, backbone.cls_token_index, :]  # (B, D)
        pooled = backbone.get_layer("pooled_dense")(cls)  # (B, D)
    outputs = classifier(dropout(pooled))
    return keras.Model(texts, outputs, name="bert_classifier")


def encoder_bottom(backbone, num_layers):
    """BERT's embeddings and its first `num_layers` transformer layers, as one model.

    Inputs `{"token_ids", "padding_mask"}` (B, T); outputs `[hidden (B, T, D), padding_mask]`,
    the mask passed through for the layers above (and the prefix cache).
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
    tokens = backbone.get_layer("token_embedding")(token_ids)
    positions = backbone.get_layer("position_embedding")(tokens)
    segments = backbone.get_layer("segment_embedding")(keras.ops.zeros_like(token_ids))  # one segment
    x = backbone.get_layer("embeddings_add")((tokens, positions, segments))
    x = backbone.get_layer("embeddings_layer_norm")(x)
    x = backbone.get_layer("embeddings_dropout")(x)
    for i in range(num_layers):
        x = backbone.get_layer(f"transformer_layer_{i}")(x, padding_mask=padding_mask)
    return keras.Model(
        {"token_ids": token_ids, "padding_mask": padding_mask}, [x, padding_mask], name="encoder_bottom"
    )


def pretrained_blocks(model):
    """The pretrained layers that train, bottom to top: the embeddings (when not in the frozen
    prefix), each transformer layer above the frozen prefix (the last one possibly at [CLS]
    only), then BERT's pooler. What stages
    unfreeze (`top:N`) and adapt (`lora:R` on their `query` and `value` projections)."""
    bottom = [[layer] for layer in model.layers if layer.name == "encoder_bottom"]  # when not frozen
    blocks = [[layer] for layer in model.layers if layer.name.startswith("transformer_layer_")]
    pooler = [[layer] for layer in model.layers if layer.name == "pooled_dense"]
    return bottom + blocks + pooler


def tensor_model(model, config):
    """The classifier from WordPiece ids on, for LiteRT and ONNX (which cannot hold the
    tensorflow-text tokenizer): `token_ids` and `padding_mask`, padded to `max_length`, the
    vocabulary and tokenizer settings documented beside them."""
    import numpy as np

    from tf_finetune.serving.tensor_model import TensorModel

    tokenize = model.get_layer("tokenize")
    tokenizer = tokenize.tokenizer
    length = config.max_length
    # Keras cuts the graph at the tokenizer's outputs, which become the new model's inputs. A
    # loaded model keeps them as the list `keras.tree.flatten` makes of the tokenizer's dict.
    outputs = tokenize.output
    order = keras.tree.flatten({"token_ids": "token_ids", "padding_mask": "padding_mask"})
    on_ids = keras.Model(keras.tree.flatten(outputs), model.output)
    inputs = {name: keras.Input(shape=(length,), dtype="int32", name=name) for name in ("token_ids", "padding_mask")}
    wrapped = keras.Model([inputs["token_ids"], inputs["padding_mask"]], on_ids([inputs[name] for name in order]),
                          name=f"{model.name}_on_ids")

    def to_tensors(texts):
        tokens = tokenize(texts)
        pad = length - int(tokens["token_ids"].shape[1])
        ids = np.pad(np.asarray(tokens["token_ids"]), ((0, 0), (0, pad)), constant_values=tokenizer.pad_token_id)
        mask = np.pad(np.asarray(tokens["padding_mask"]), ((0, 0), (0, pad)))
        return [ids.astype("int32"), mask.astype("int32")]

    preprocessing = {
        "kind": "wordpiece",
        "vocabulary": "vocabulary.txt",
        "lowercase": bool(tokenizer.lowercase),
        "strip_accents": bool(tokenizer.strip_accents),
        "max_length": length,
        "cls": tokenizer.cls_token, "sep": tokenizer.sep_token, "pad": tokenizer.pad_token,
        "unk": tokenizer.unk_token if hasattr(tokenizer, "unk_token") else "[UNK]",
    }
    inputs = [{"name": "token_ids", "shape": [None, length], "dtype": "int32"},
              {"name": "padding_mask", "shape": [None, length], "dtype": "int32"}]
    vocabulary = "".join(f"{token}\n" for token in tokenizer.get_vocabulary())
    return TensorModel(wrapped, inputs, to_tensors, preprocessing, assets={"vocabulary.txt": vocabulary})
