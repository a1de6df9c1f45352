"""The translation data: Tatoeba English-Chinese pairs, split, counted and batched.

`cmn.txt` has one pair per line, `English<TAB>Chinese<TAB>attribution` (the attribution is
optional here). Many English sentences have several Chinese translations, so the split is by
English sentence: all its translations land in the same split, none of the test sentences is
seen in training, and the test set scores each sentence against all its references.

Training batches are `({"source": English strings, "target_in": [start] + characters},
characters + [end], weights)`: the model reads the English itself; the weights are 0 on
padding, so neither the loss nor the accuracy counts it.
"""

import collections
import dataclasses
import logging
import os
import typing

import numpy as np

from tf_finetune.data import locate
from tf_finetune.errors import UserError
from tf_finetune.project import Data

from projects.translation import text

logger = logging.getLogger(__name__)

FILENAME = "cmn.txt"
PAIRS = "English<TAB>Chinese lines (Tatoeba pairs from manythings.org/anki)"
LAYOUT = f"{FILENAME} with {PAIRS}"


@dataclasses.dataclass
class TranslationData(Data):
    """`Data` plus what a translator is built and scored with.

    Attributes:
        source_vocabulary, target_vocabulary: training words and characters, most frequent first.
        test: `(English sentences, tuple of Chinese references per sentence)`, held out.
    """

    source_vocabulary: list = dataclasses.field(default_factory=list)
    target_vocabulary: list = dataclasses.field(default_factory=list)
    test: typing.Any = None


def load_data(config, data_dir=None):
    path = resolve_file(data_dir, config.dataset)
    pairs = read_pairs(path)
    if config.max_pairs:
        order = np.random.default_rng(config.seed).permutation(len(pairs))[: config.max_pairs]
        pairs = [pairs[i] for i in sorted(order)]
    train, val, test = split_by_source(pairs, config.validation_split, config.test_split, config.seed)
    if not train or not val or not test:
        raise UserError(
            f"{path}: {len(pairs)} pairs are too few to split into training, validation and "
            "test sentences: pass a file with more pairs (or a larger --max-pairs)."
        )
    words = text.english_words([en for en, _ in train]).to_list()
    source_vocabulary = vocabulary((w.decode("utf-8") for ws in words for w in ws), config.min_count)
    target_vocabulary = vocabulary((c for _, zh in train for c in zh if not c.isspace()), config.min_count)
    test_refs = collections.defaultdict(list)
    for en, zh in test:
        test_refs[en].append(zh)
    info = {
        "train_pairs": len(train), "validation_pairs": len(val),
        "test_sentences": len(test_refs), "test_pairs": len(test),
        "source_vocabulary": len(source_vocabulary), "target_vocabulary": len(target_vocabulary),
    }
    return TranslationData(
        train=make_dataset(train, target_vocabulary, config, shuffle=True),
        train_batches=lambda seed, batch_size: make_dataset(
            train, target_vocabulary, config, shuffle=True, seed=seed, batch_size=batch_size, reshuffle=False),
        val=make_dataset(val, target_vocabulary, config),
        class_names=(),
        source=path,
        examples=[en for en, _ in val[:8]],
        info=info,
        source_vocabulary=source_vocabulary,
        target_vocabulary=target_vocabulary,
        test=(list(test_refs), [tuple(refs) for refs in test_refs.values()]),
    )


def resolve_file(data_dir, dataset):
    """`--data-dir` (the file, or a folder holding cmn.txt), else `$TF_FINETUNE_DATA/<dataset>`."""
    path = locate.resolve_data(data_dir, dataset, what=LAYOUT)
    if os.path.isdir(path):
        path = os.path.join(path, FILENAME)
        if not os.path.isfile(path):
            raise UserError(f"--data-dir {os.path.dirname(path)} has no {FILENAME}: pass a folder with {LAYOUT}.")
    return path


def read_pairs(path):
    """[(English, Chinese)] of a pairs file; lines without both sentences are skipped, counted."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path}: not UTF-8 text (byte {e.start}): save it as UTF-8 with English<TAB>Chinese lines."
        ) from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror}): pass a readable {FILENAME}.") from None
    pairs, skipped, first_bad = [], 0, None
    for number, line in enumerate(lines, 1):
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0].strip() and fields[1].strip():
            pairs.append((fields[0].strip(), fields[1].strip()))
        elif line.strip():
            skipped += 1
            first_bad = first_bad or (number, line)
    if not pairs:
        found = "it is empty"
        if skipped:
            found = (f"{skipped} lines without a tab-separated English and Chinese sentence, "
                     f"e.g. line {first_bad[0]}: {first_bad[1][:60]!r}")
        raise UserError(
            f"{path}: no English<TAB>Chinese lines found ({found}): pass a UTF-8 file of {PAIRS}."
        )
    if skipped:
        logger.warning("%s: skipped %d of %d lines without an English and a Chinese sentence.",
                       path, skipped, skipped + len(pairs))
    return pairs


def split_by_source(pairs, validation_split, test_split, seed):
    """(train, validation, test) pairs; each English sentence's pairs go to one split."""
    sources = sorted({en for en, _ in pairs})
    order = np.random.default_rng(seed).permutation(len(sources))
    n_test = int(round(test_split * len(sources)))
    n_val = int(round(validation_split * len(sources)))
    split_of = {}
    for rank, i in enumerate(order):
        split_of[sources[i]] = 2 if rank < n_test else 1 if rank < n_test + n_val else 0
    splits = ([], [], [])
    for pair in pairs:
        splits[split_of[pair[0]]].append(pair)
    return splits


def vocabulary(tokens, min_count=1):
    """Tokens seen at least `min_count` times, most frequent first (ties by first sight)."""
    counts = collections.Counter(tokens)
    return [t for t, c in counts.most_common() if c >= min_count]


def make_dataset(pairs, target_vocabulary, config, shuffle=False, *, seed=None, batch_size=None,
                 reshuffle=True):
    """Batches of `({"source", "target_in"}, target_out, weights)` (see the module doc).

    Pairs are grouped by the length of their Chinese sentence, so a batch is padded only to
    its own longest one: every padded position costs as much as a real one in each layer.
    `seed` and `batch_size` default to the config's; `reshuffle=False` makes every pass the
    same order (a function of `seed`).
    """
    seed = config.seed if seed is None else seed
    batch_size = batch_size or config.batch_size
    import tensorflow as tf

    from tf_finetune.data import text_dataset

    target_ids = text.lookup(target_vocabulary, target=True)
    max_chars = config.max_target_length - 1  # room for the start / end mark

    def to_batch(english, chinese, lengths):
        ids = tf.cast(target_ids(text.chinese_characters(chinese)[:, :max_chars]), tf.int32)
        batch = ids.nrows()
        start = tf.fill([batch, 1], text.START_ID)
        end = tf.fill([batch, 1], text.END_ID)
        target_in = tf.concat([start, ids], axis=1).to_tensor(text.PAD_ID)
        target_out = tf.concat([ids, end], axis=1).to_tensor(text.PAD_ID)
        weights = tf.cast(tf.not_equal(target_out, text.PAD_ID), tf.float32)
        return {"source": english, "target_in": target_in}, target_out, weights

    english, chinese = (list(x) for x in zip(*pairs))
    lengths = [min(sum(not c.isspace() for c in zh), max_chars) for zh in chinese]
    ds = tf.data.Dataset.from_tensor_slices((english, chinese, tf.constant(lengths, tf.int32)))
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=reshuffle)
    ds = text_dataset.bucket_by_length(ds, lengths, lambda en, zh, length: length,
                                       batch_size=batch_size,
                                       boundaries=text_dataset.fine_bucket_boundaries(max_chars))
    return ds.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
