"""Text classification data for any project: settings, tables, TFDS fallback and CLI inputs.

A text project's config extends `TextDataConfig` (the dataset and its columns, class names,
and EDA text augmentation), and its data function calls `load_tables`, which resolves the
data as everywhere in tf-finetune (`--data-dir`, else `$TF_FINETUNE_DATA/<dataset>`, else
TFDS online) and returns train/validation `TextTable`s; `make_data` turns those into batches
of raw strings grouped by length. Tokens are the model's business: its first layer reads
raw strings, so `preprocess` is the identity.
"""

import dataclasses
import logging
import os
import typing

from tf_finetune.config import TrainConfig
from tf_finetune.config import flag_name
from tf_finetune.config import option
from tf_finetune.data import locate
from tf_finetune.data import text_table
from tf_finetune.errors import UserError
from tf_finetune.project import Data
from tf_finetune.project import pick_examples

logger = logging.getLogger(__name__)

# Dataset folder name (under $TF_FINETUNE_DATA) -> TFDS (dataset, train split, validation
# split) used when online. TFDS imdb_reviews keeps its 25k/25k train/test split.
TFDS_SOURCES = {
    "imdb": ("imdb_reviews", "train", "test"),
    "sst2": ("glue/sst2", "train", "validation"),
}
# Class names of datasets whose label column holds integers.
DATASET_CLASS_NAMES = {"sst2": ("negative", "positive")}
# TFDS imdb_reviews calls its classes neg/pos.
TFDS_CLASS_NAMES = {"neg": "negative", "pos": "positive"}
NUM_EXAMPLES = 8  # validation texts recorded for predict/export checks
LAYOUT = "train.tsv/train.csv (and dev.tsv), or one CSV/TSV file of texts and labels"


@dataclasses.dataclass(frozen=True)
class TextDataConfig(TrainConfig):
    """`TrainConfig` plus where the texts come from and how training texts are augmented."""

    # === Data ===
    dataset: str = option(
        "imdb",
        "Dataset name: the folder under $TF_FINETUNE_DATA, and the TFDS fallback online "
        "(imdb -> imdb_reviews, sst2 -> glue/sst2).",
    )
    text_column: str = option("", "Text column of a CSV/TSV file (default: text, sentence, review, ...).")
    label_column: str = option("", "Label column of a CSV/TSV file (default: label, sentiment, class, ...).")
    class_names: typing.Tuple[str, ...] = option(
        (),
        "Class names in label order, for integer labels (default for sst2: negative positive; "
        "string labels name themselves).",
    )
    group_column: str = option(
        "auto",
        "Column whose values group the rows: every group stays on one side of every split "
        "(validation, test, folds). auto: the table's `movie` column if it has one (IMDB: "
        "reviews of one film share names and plot, so a random split flatters); none: no groups.",
    )
    max_length: int = option(
        128, "Tokens kept per text; batches group texts by length up to this (longer ones share the last group)."
    )
    # === Text augmentation (off by default) ===
    word_deletion: float = option(0.0, "Training only: delete each word with this probability.")
    word_swap: float = option(0.0, "Training only: swap max(1, round(rate * words)) random word pairs per text.")

    def __post_init__(self):
        super().__post_init__()
        if self.max_length < 1:
            raise UserError(f"--max-length must be positive. Received: max_length={self.max_length}")
        for name in ("word_deletion", "word_swap"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(
                    f"--{flag_name(name)} must be in [0, 1). Received: {name}={getattr(self, name)}"
                )

    def resolved_class_names(self):
        """The given class names, else the dataset's known ones, else None (infer)."""
        return tuple(self.class_names) or DATASET_CLASS_NAMES.get(self.dataset)


def load_tables(config, data_dir=None):
    """Train and validation `TextTable`s for `config`, with the source and counts.

    Returns:
        `(train, val, source, info)`: `source` is the local path or `tfds:<name>`; `info`
        holds the split and class counts for the run record.
    """
    tfds_name = TFDS_SOURCES.get(config.dataset, (None,))[0]
    source = locate.resolve_data(data_dir, config.dataset, tfds_name=tfds_name, what=LAYOUT)
    if isinstance(source, locate.TfdsSource):
        if config.folds:
            raise UserError(f"--folds {config.folds}: cross-validation reads the data from a folder; pass "
                            f"--data-dir or set $TF_FINETUNE_DATA (TFDS {tfds_name} has fixed splits).")
        train, val, info = _read_tfds(config)
        source = f"tfds:{source.name}"
    else:
        train, val, info = text_table.load_splits(
            source,
            text_column=config.text_column or None,
            label_column=config.label_column or None,
            class_names=tuple(config.class_names) or None,
            integer_label_names=_known_class_names(config, source),
            validation_split=config.validation_split,
            seed=config.seed,
            max_per_class=config.max_examples_per_class,
            folds=config.folds,
            fold=config.fold,
            group_column=None if config.group_column in ("", "none") else config.group_column,
        )
    info = {"train_examples": len(train), "validation_examples": len(val), **info}
    return train, val, source, info


def hold_out_test(config, train, info):
    """`(train, test or None)`: `config.test_split` of the training texts held out as a test
    set (duplicates dropped first); `info` gets the counts."""
    if not config.test_split:
        return train, None
    train, test = text_table.hold_out(train, config.test_split, config.seed)
    info.update(train_examples=len(train), train_counts=train.class_counts(), test_examples=len(test),
                test_counts=test.class_counts())
    return train, test


def make_data(config, train, val, source, info, *, adapt=False, transfer=None, **batching):
    """`Data` of raw-text batches grouped by length, from train/validation `TextTable`s.

    `batching` goes to `text_dataset.make_text_dataset` (e.g. `boundaries`, `bucket`) with
    the config's batch size and `max_length`; training batches are augmented as configured.
    `adapt=True` also hands the training texts to layers that learn from them (a vocabulary).
    `transfer(train, held_out)`, a function of the training `TextTable` (after the test
    hold-out) and the validation and test texts, returning `(texts, targets, vocabulary)`,
    replaces the training batches' texts and labels (a distillation's transfer set and packed
    targets, `tf_finetune.distillation`); a vocabulary adapts to the texts `vocabulary`
    (the training texts, and any unlabelled transfer texts); validation and calibration keep
    the training table's own.
    """
    import tensorflow as tf

    from tf_finetune.data import text_dataset

    augmentation = make_augmentation(config)
    batching = dict(max_length=config.max_length, **batching)
    train, test = hold_out_test(config, train, info)
    vocabulary = train.texts
    texts, targets = train.texts, train.labels
    if transfer is not None:
        texts, targets, vocabulary = transfer(train, tuple(val.texts) + (tuple(test.texts) if test else ()))

    def train_batches(seed, batch_size, reshuffle=False):
        return text_dataset.make_text_dataset(
            texts, targets, shuffle=True, seed=seed, reshuffle=reshuffle,
            augmentation=augmentation, batch_size=batch_size, **batching)

    calibration = None
    if transfer is not None:
        calibration = text_dataset.make_text_dataset(train.texts, train.labels, batch_size=config.batch_size,
                                                     **batching)
    return Data(
        calibration=calibration,
        train=train_batches(config.seed, config.batch_size, reshuffle=True),
        train_batches=train_batches,
        val=text_dataset.make_text_dataset(val.texts, val.labels, batch_size=config.batch_size, **batching),
        test=test and text_dataset.make_text_dataset(test.texts, test.labels, batch_size=config.batch_size,
                                                     **batching),
        class_names=train.class_names,
        source=source,
        examples=pick_examples(val.texts, val.labels, NUM_EXAMPLES),
        info=info,
        adapt=tf.data.Dataset.from_tensor_slices(list(vocabulary)) if adapt else None,
        augmentation=augmentation,
    )


def preprocess(config):
    """In-graph pre-processing of a text model: none, its first layer reads raw strings."""
    return lambda texts: texts


def make_augmentation(config):
    """Random word deletion / swap on training batches, or None when both are off."""
    if not (config.word_deletion or config.word_swap):
        return None
    from tf_finetune.augmentation.text_augmentation import TextAugmentation

    return TextAugmentation(word_deletion=config.word_deletion, word_swap=config.word_swap, seed=config.seed)


def _known_class_names(config, source):
    """Names for integer labels: the --dataset's, else those of a known data folder (e.g. sst2/)."""
    folder = source if os.path.isdir(source) else os.path.dirname(source)
    return DATASET_CLASS_NAMES.get(config.dataset) or DATASET_CLASS_NAMES.get(
        os.path.basename(os.path.normpath(folder)))


def _read_tfds(config):
    """The TFDS variant (online): its own train and validation splits, as `TextTable`s."""
    import tensorflow_datasets as tfds

    name, train_split, val_split = TFDS_SOURCES[config.dataset]
    tables = []
    for split in (train_split, val_split):
        ds, info = tfds.load(name, split=split, with_info=True)
        features = info.features
        text_key = next(k for k in features if features[k].dtype == "string")
        class_names = tuple(features["label"].names)
        texts, labels = [], []
        for example in tfds.as_numpy(ds):
            if example["label"] >= 0:  # GLUE test rows are unlabelled (-1)
                texts.append(example[text_key].decode("utf-8", "replace"))
                labels.append(int(example["label"]))
        tables.append(text_table.TextTable(f"tfds:{name}/{split}", tuple(texts), tuple(labels), class_names))
    train, val = tables
    class_names = config.resolved_class_names() or tuple(TFDS_CLASS_NAMES.get(n, n) for n in train.class_names)
    if len(class_names) != len(train.class_names):
        raise UserError(
            f"--class-names has {len(class_names)} names but tfds:{name} has "
            f"{len(train.class_names)} classes: pass one name per class."
        )
    train = dataclasses.replace(train, class_names=class_names)
    val = dataclasses.replace(val, class_names=class_names)
    if config.max_examples_per_class:
        train = text_table.limit_per_class(train, config.max_examples_per_class, config.seed)
        val = text_table.limit_per_class(val, config.max_examples_per_class, config.seed)
    info = {"split": f"tfds {train_split}/{val_split}", "train_counts": train.class_counts(),
            "val_counts": val.class_counts()}
    return train, val, info


def read_inputs(inputs, max_pixels=None):
    """Texts from the command line; `@FILE` stands for the non-empty lines of FILE.

    `max_pixels` (predict's `--max-image-pixels`) concerns image inputs only: unused here.
    """
    texts = []
    for item in inputs:
        if item.startswith("@"):
            path = item[1:]
            if not os.path.isfile(path):
                raise UserError(f"INPUT {item}: {path} is not a file: pass @FILE with one text per line.")
            with open(path, encoding="utf-8", errors="replace") as f:
                texts.extend(line.strip() for line in f if line.strip())
        else:
            texts.append(item)
    if not texts:
        raise UserError("INPUT: no texts given: pass texts, or @FILE with one text per line.")
    return texts


def synthetic_inputs(config):
    """Fixed sentences, to verify an export when the run's examples are not available."""
    return [
        "A wonderful, moving film with superb acting.",
        "This was a dull and pointless waste of two hours.",
        "not bad at all",
        "",
    ]
