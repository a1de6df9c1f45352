"""Data for bert_classifier: a CSV/TSV table of texts and labels (or TFDS online), split and
batched by length; the model tokenizes inside the graph."""

from tf_finetune import text_data
from tf_finetune import text_dataset
from tf_finetune.project import Data
from tf_finetune.project import pick_examples

NUM_EXAMPLES = 8  # validation texts recorded for predict/export checks


def load_data(config, data_dir=None):
    """Returns `Data` for `config`: raw-text batches grouped by length."""
    train, val, source, info = text_data.load_tables(config, data_dir)
    batches = dict(batch_size=config.batch_size, max_length=config.max_length,
                   boundaries=text_dataset.fine_bucket_boundaries(config.max_length))
    return Data(
        train=text_dataset.make_text_dataset(
            train.texts, train.labels, shuffle=True, seed=config.seed,
            augmentation=text_data.make_augmentation(config), **batches,
        ),
        val=text_dataset.make_text_dataset(val.texts, val.labels, **batches),
        class_names=train.class_names,
        source=source,
        examples=pick_examples(val.texts, val.labels, NUM_EXAMPLES),
        info=info,
    )


def preprocess(config):
    """In-graph pre-processing: none; the model's first layer tokenizes raw strings."""
    return lambda texts: texts
