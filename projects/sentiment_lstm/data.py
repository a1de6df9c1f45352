"""Data for sentiment_lstm: a CSV/TSV table of texts and labels (or TFDS online), split,
batched by length, optionally augmented."""

from tf_finetune import text_data
from tf_finetune import text_dataset
from tf_finetune.project import Data
from tf_finetune.project import pick_examples

NUM_EXAMPLES = 8  # validation texts recorded for predict/export checks


def load_data(config, data_dir=None):
    """Returns `Data` for `config`: raw-text batches grouped by length, train augmented."""
    train, val, source, info = text_data.load_tables(config, data_dir)
    return make_data(config, train, val, source, info)


def make_data(config, train, val, source, info):
    """`Data` from train/validation `TextTable`s."""
    import tensorflow as tf

    batches = dict(batch_size=config.batch_size, max_length=config.max_length,
                   bucket=config.model != "seed")  # the seed pads everything to max_length
    train_ds = text_dataset.make_text_dataset(
        train.texts, train.labels, shuffle=True, seed=config.seed,
        augmentation=text_data.make_augmentation(config), **batches,
    )
    val_ds = text_dataset.make_text_dataset(val.texts, val.labels, **batches)
    return Data(
        train=train_ds,
        val=val_ds,
        class_names=train.class_names,
        source=source,
        examples=pick_examples(val.texts, val.labels, NUM_EXAMPLES),
        info=info,
        adapt=tf.data.Dataset.from_tensor_slices(list(train.texts)),
    )


def preprocess(config):
    """In-graph pre-processing: none; the model's first layer tokenizes raw strings."""
    return lambda texts: texts
