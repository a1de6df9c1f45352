"""Data for sentiment_lstm: a CSV/TSV table of texts and labels (or TFDS online), split,
batched by length, optionally augmented; the training texts also build the vocabulary."""

from tf_finetune.data import text_data


def load_data(config, data_dir=None):
    """Returns `Data` for `config`: raw-text batches grouped by length, train augmented."""
    train, val, source, info = text_data.load_tables(config, data_dir)
    return make_data(config, train, val, source, info)


def make_data(config, train, val, source, info, transfer=None):
    """`Data` from train/validation `TextTable`s (the seed pads everything to max_length);
    `transfer`: see `text_data.make_data`."""
    return text_data.make_data(config, train, val, source, info, adapt=True, bucket=config.model != "seed",
                               transfer=transfer)
