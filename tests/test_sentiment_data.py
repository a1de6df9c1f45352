"""sentiment_lstm data: class names, augmentation switch, CLI inputs, the TFDS variant."""

import os

import pytest
import tensorflow as tf

from projects.sentiment_lstm import data as data_lib
from projects.sentiment_lstm.config import SentimentConfig
from tf_finetune.errors import UserError
from tf_finetune.text_augmentation import TextAugmentation


def write_tsv(folder, name="train.tsv", n=20):
    os.makedirs(folder, exist_ok=True)
    rows = "".join(f"good movie number {i}\t1\nbad movie number {i}\t0\n" for i in range(n))
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write("sentence\tlabel\n" + rows)
    return path


def test_integer_labels_of_a_folder_named_sst2_are_negative_positive(tmp_path):
    folder = tmp_path / "sst2"
    write_tsv(folder)
    write_tsv(folder, "dev.tsv", n=3)
    data = data_lib.load_data(SentimentConfig(batch_size=8), str(folder))
    assert data.class_names == ("negative", "positive")
    assert data.info["split"] == "file" and data.info["validation_examples"] == 6
    assert set(data.examples) <= {f"{w} movie number {i}" for w in ("good", "bad") for i in range(3)}
    texts = sorted(t.decode() for t in data.adapt.as_numpy_iterator())
    assert len(texts) == 40 and texts[0] == "bad movie number 0"


def test_class_names_flag_names_integer_labels(tmp_path):
    path = write_tsv(tmp_path / "other")
    data = data_lib.load_data(SentimentConfig(class_names=("neg", "pos")), path)
    assert data.class_names == ("neg", "pos")
    assert data_lib.load_data(SentimentConfig(), path).class_names == ("0", "1")


def test_augmentation_is_off_by_default_and_built_from_the_rates():
    assert data_lib.make_augmentation(SentimentConfig()) is None
    aug = data_lib.make_augmentation(SentimentConfig(word_deletion=0.1, word_swap=0.2, seed=3))
    assert isinstance(aug, TextAugmentation)
    assert (aug.word_deletion, aug.word_swap, aug.seed) == (0.1, 0.2, 3)


def test_training_batches_are_augmented_and_validation_batches_are_not(tmp_path):
    path = write_tsv(tmp_path / "d", n=40)
    config = SentimentConfig(word_deletion=0.5, batch_size=8, seed=0)
    data = data_lib.load_data(config, path)
    originals = {f"{w} movie number {i}" for w in ("good", "bad") for i in range(40)}
    train = [t.decode() for x, _ in data.train for t in x.numpy()]
    val = [t.decode() for x, _ in data.val for t in x.numpy()]
    assert set(val) <= originals
    assert sum(t not in originals for t in train) > len(train) // 2


def test_read_inputs_takes_texts_and_at_files(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("first review\n\n  second review  \n")
    assert data_lib.read_inputs(["hello", f"@{path}"]) == ["hello", "first review", "second review"]
    with pytest.raises(UserError, match="is not a file"):
        data_lib.read_inputs([f"@{tmp_path / 'nope.txt'}"])


def test_tfds_variant_reads_splits_and_names_classes(monkeypatch):
    """Offline stand-in for tfds.load: the shapes of imdb_reviews (text, label, names neg/pos)."""
    import tensorflow_datasets as tfds

    class Label:
        dtype = "int64"
        names = ["neg", "pos"]

    class Text:
        dtype = "string"

    class Info:
        features = {"text": Text(), "label": Label()}

    def fake_load(name, split, with_info):
        assert name == "imdb_reviews" and split in ("train", "test")
        texts = [b"great", b"awful", b"fine", b"bad"] if split == "train" else [b"ok", b"meh"]
        labels = [1, 0, 1, 0] if split == "train" else [1, 0]
        return tf.data.Dataset.from_tensor_slices({"text": texts, "label": labels}), Info()

    monkeypatch.setattr(tfds, "load", fake_load)
    train, val, info = data_lib._read_tfds(SentimentConfig(dataset="imdb"))
    assert train.class_names == val.class_names == ("negative", "positive")
    assert train.texts == ("great", "awful", "fine", "bad") and val.labels == (1, 0)
    assert info["split"] == "tfds train/test"
