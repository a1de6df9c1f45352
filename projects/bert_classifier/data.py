"""Data for bert_classifier: a CSV/TSV table of texts and labels (or TFDS online), split and
batched by length (finely: a transformer's cost grows with every padding token); the model
tokenizes inside the graph."""

from tf_finetune.data import text_data
from tf_finetune.data import text_dataset


def load_data(config, data_dir=None):
    """Returns `Data` for `config`: raw-text batches grouped by length."""
    return make_data(config, *text_data.load_tables(config, data_dir))


def make_data(config, train, val, source, info, transfer=None):
    """`Data` from train/validation `TextTable`s; `transfer`: see `text_data.make_data`."""
    return text_data.make_data(config, train, val, source, info, transfer=transfer,
                               boundaries=text_dataset.fine_bucket_boundaries(config.max_length))
