"""Word vectors for the student's embedding from a BERT preset's word-piece embeddings.

There are no word2vec or GloVe files offline, but every BERT preset carries a table of
word-piece vectors (30,522 x 384 for MiniLM-L6). `--word-vectors PRESET` starts the
BiLSTM's embedding from it: each word of the vocabulary gets the mean of its pieces'
vectors (`unwatchable` -> `un`, `##watch`, `##able`), the OOV token gets `[UNK]`'s
and padding zeros. The vocabulary and tokenization stay the student's own
(`TextVectorization`), so the model and its export are unchanged; only the starting point
of one weight differs. Tang et al. 2019 distilled BERT into a BiLSTM whose word vectors were
pretrained (word2vec); this is the offline stand-in.
"""

import logging

import numpy as np

logger = logging.getLogger(__name__)


def word_piece_vectors(preset, words):
    """`(len(words), hidden)` float32: the mean word-piece embedding of each word.

    Args:
        preset: a BERT preset as bert_classifier's `--preset` takes it (a local keras-hub or
            Hugging Face folder, or a handle).
        words: the vocabulary, as `TextVectorization.get_vocabulary()` returns it: `""`
            (padding, a zero row) and `"[UNK]"` (the OOV token, BERT's `[UNK]` vector) first.
    Returns:
        `(vectors, covered)`: the matrix and how many words were made of known pieces only.
    """
    import tensorflow as tf

    from projects.bert_classifier import presets

    backbone, tokenizer = presets.load(presets.resolve_preset(preset))
    table = np.asarray(backbone.token_embedding.embeddings, dtype="float32")
    unk = tokenizer.token_to_id("[UNK]")
    pieces = tokenizer(tf.constant([w if w else " " for w in words]))
    vectors = np.zeros((len(words), table.shape[1]), dtype="float32")
    covered = 0
    if hasattr(pieces, "to_list"):  # a tf.RaggedTensor (keras-hub may give lists already)
        pieces = pieces.to_list()
    for i, ids in enumerate(pieces):
        ids = list(np.asarray(ids).reshape(-1))
        ids = [t for t in ids if t != unk] if words[i] != "[UNK]" else [unk]
        if i == 0 or not ids:  # padding; a word of unknown pieces only keeps a zero row
            continue
        vectors[i] = table[ids].mean(axis=0)
        covered += 1
    return vectors, covered


def principal_components(vectors, size):
    """`vectors` projected on their top `size` principal axes (centred on the mean of the
    non-zero rows; zero rows, such as padding, stay zero). The projection keeps each axis's
    spread, so the reduced vectors have the scale of the originals."""
    rows = np.any(vectors != 0, axis=1)
    mean = vectors[rows].mean(axis=0)
    _, _, axes = np.linalg.svd(vectors[rows] - mean, full_matrices=False)
    reduced = (vectors - mean) @ axes[:size].T
    reduced[~rows] = 0.0
    return reduced.astype("float32")
