"""Model factory for sentiment_lstm: an encoder (raw text -> features) and a classifier head.

Both models take raw strings: `TextVectorization` is the encoder's first layer, so the
exported SavedModel, `predict` and `evaluate` all feed text. The encoder is one nested
model named `backbone` (vectorizer, embedding, LSTM), the same shape as the image projects,
so freezing it, fine-tuning its top and reusing it in another run are one line each.

- `bilstm` (default): standardization that reads IMDB and SST-2 alike, a 20k vocabulary,
  texts cut at 400 tokens, `Embedding(mask_zero=True)` so padding never reaches the LSTM,
  a bidirectional LSTM whose outputs are max-pooled over the real tokens, dropout, softmax.
- `seed`: the seed's baseline as written: 10k vocabulary with OOV, texts padded and cut at
  the end to 120 tokens (no mask), `Embedding(10000, 16)`, `LSTM(128)`, `Dense(1, sigmoid)`
  trained with binary cross-entropy (see `layers.BinaryToCategorical`).
"""

import logging

import keras

from tf_finetune.errors import UserError
from tf_finetune.models import freezing
from tf_finetune.run_dir import load_run

from projects.sentiment_lstm.layers import BinaryToCategorical
from projects.sentiment_lstm.layers import MaskedGlobalMaxPooling1D
from projects.sentiment_lstm.layers import TruncateSequence
from projects.sentiment_lstm.layers import standardize
from projects.sentiment_lstm.layers import standardize_seed

logger = logging.getLogger(__name__)
# Settings that define the encoder; with --init-from they come from that run.
ENCODER_SETTINGS = ("model", "vocab_size", "max_length", "embedding_dim", "lstm_units")
ENCODER = "backbone"  # the encoder's name in the classifier, for `encoder`


def build_model(config, data):
    """The classifier for `config` over `data.class_names`; adapts the vocabulary on `data.adapt`."""
    num_classes = len(data.class_names)
    if config.model == "seed" and num_classes != 2:
        raise UserError(
            f"--model seed is the binary sigmoid baseline; this data has {num_classes} classes "
            f"({', '.join(data.class_names)}): use --model bilstm."
        )
    # === Encoder ===
    if config.init_from:
        backbone = load_encoder(config.init_from, config)
    else:
        backbone = build_encoder(config, data.adapt)
        if config.freeze == "encoder" or (config.freeze == "embedding" and not config.word_vectors):
            logger.warning("--freeze %s without --init-from keeps randomly initialised weights frozen.",
                           config.freeze)
    if config.freeze == "embedding":
        freezing.freeze(backbone.get_layer("embedding"))
    elif config.freeze == "encoder":
        freezing.freeze(backbone)

    # === Head ===
    inputs = keras.Input(shape=(), dtype="string", name="text")
    features = backbone(inputs)
    if config.model == "seed":
        outputs = BinaryToCategorical(name="probabilities", dtype="float32")(
            keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="classifier")(features)
        )
    else:
        features = keras.layers.Dropout(config.dropout, name="dropout")(features)
        outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier")(features)
    return keras.Model(inputs, outputs, name=f"sentiment_{config.model}")


def build_encoder(config, texts):
    """The `backbone` model: 1-D tf.string -> features; its vocabulary adapted on `texts`."""
    import tensorflow as tf

    seed = config.model == "seed"
    vectorizer = keras.layers.TextVectorization(
        max_tokens=config.vocab_size,
        standardize=standardize_seed if seed else standardize,
        # The seed pads/cuts every text to max_length ("post"); bilstm pads per batch.
        output_sequence_length=config.max_length if seed else None,
        name="vectorizer",
    )
    if texts is None:
        raise ValueError("build_encoder needs training texts to adapt the vocabulary. Received: texts=None")
    vectorizer.adapt(texts.batch(1024).prefetch(tf.data.AUTOTUNE))
    vocab_size = vectorizer.vocabulary_size()
    logger.info("Vocabulary: %d tokens (--vocab-size %d).", vocab_size, config.vocab_size)

    inputs = keras.Input(shape=(), dtype="string", name="text")
    ids = vectorizer(inputs)  # (B, T) int64, 0 = padding, 1 = OOV
    if not seed:
        ids = TruncateSequence(config.max_length, name="truncate")(ids)
    embedding = keras.layers.Embedding(vocab_size, config.embedding_dim, mask_zero=not seed, name="embedding")
    x = embedding(ids)
    if config.word_vectors:
        set_word_vectors(embedding, vectorizer.get_vocabulary(), config.word_vectors)
    if seed:
        x = keras.layers.LSTM(config.lstm_units, name="lstm")(x)  # (B, units)
    else:
        x = keras.layers.Bidirectional(
            keras.layers.LSTM(config.lstm_units, return_sequences=True), name="lstm"
        )(x)  # (B, T, 2 * units), masked
        x = MaskedGlobalMaxPooling1D(name="pool")(x)  # (B, 2 * units)
    return keras.Model(inputs, x, name=ENCODER)


def set_word_vectors(embedding, vocabulary, preset):
    """Starts `embedding` from the word-piece vectors of the BERT `preset` (`--word-vectors`)."""
    from projects.sentiment_lstm.word_vectors import principal_components
    from projects.sentiment_lstm.word_vectors import word_piece_vectors

    vectors, covered = word_piece_vectors(preset, vocabulary)
    hidden, size = vectors.shape[1], embedding.output_dim
    if size > hidden:
        raise UserError(
            f"--word-vectors {preset} has {hidden}-d word pieces but --embedding-dim is {size}: "
            f"pass --embedding-dim {hidden} or less."
        )
    if size < hidden:
        vectors = principal_components(vectors, size)
    embedding.embeddings.assign(vectors)
    logger.info("Embedding started from %s's word pieces%s: %d of %d words covered.", preset,
                f" ({hidden}-d, reduced to {size} by PCA)" if size < hidden else "", covered, len(vocabulary) - 2)


def load_encoder(run_dir, config):
    """The trained `backbone` of another sentiment_lstm run (vocabulary and weights)."""
    source, _, model = load_run(run_dir, "sentiment_lstm", type(config), flag="--init-from")
    differ = [k for k in ENCODER_SETTINGS if getattr(source, k) != getattr(config, k)]
    if differ:
        logger.warning(
            "--init-from: the encoder comes from %s, so its %s are used, not this run's.",
            run_dir, ", ".join(f"{k}={getattr(source, k)!r}" for k in differ),
        )
    backbone = encoder(model)
    logger.info("Encoder initialised from %s (%s).", run_dir, freezing.format_trainable_summary(backbone))
    return backbone


def encoder(model):
    """The encoder (vocabulary, embedding, LSTM) of a classifier `build_model` made.

    It is what `--freeze` keeps frozen and the fine-tune phase unfreezes.
    """
    return model.get_layer(ENCODER)


def tensor_model(model, config):
    """The classifier from token ids on, for LiteRT and ONNX (which cannot hold the string
    vectorizer): ids cut or padded to `max_length`, the vocabulary documented beside them."""
    import numpy as np

    from tf_finetune.serving.tensor_model import TensorModel

    backbone = encoder(model)
    vectorizer = backbone.get_layer("vectorizer")
    length = config.max_length
    ids = keras.Input(shape=(length,), dtype="int64", name="token_ids")
    x = ids
    for layer in backbone.layers[backbone.layers.index(vectorizer) + 1:]:
        if not isinstance(layer, TruncateSequence):  # a no-op at a fixed max_length
            x = layer(x)
    for layer in model.layers[model.layers.index(backbone) + 1:]:
        x = layer(x)
    on_ids = keras.Model(ids, x, name=f"{model.name}_on_ids")

    def to_tensors(texts):
        tokens = np.asarray(vectorizer(texts))[:, :length]
        return [np.pad(tokens, ((0, 0), (0, length - tokens.shape[1]))).astype("int64")]

    vocabulary = vectorizer.get_vocabulary()
    preprocessing = {
        "kind": "text_vocabulary",
        "standardize": "lower_strip_punctuation" if config.model == "seed" else "lower_nt_alnum",
        "vocabulary": "vocabulary.txt",
        "oov_id": 1,
        "pad_id": 0,
        "max_length": length,
    }
    return TensorModel(on_ids, [{"name": "token_ids", "shape": [None, length], "dtype": "int64"}], to_tensors,
                       preprocessing, assets={"vocabulary.txt": "".join(f"{token}\n" for token in vocabulary)})
