"""sentiment_lstm data: class names of integer labels, augmented training batches."""

import os

from projects.sentiment_lstm import data as data_lib
from projects.sentiment_lstm.config import SentimentConfig


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


def test_training_batches_are_augmented_and_validation_batches_are_not(tmp_path):
    path = write_tsv(tmp_path / "d", n=40)
    config = SentimentConfig(word_deletion=0.5, batch_size=8, seed=0)
    data = data_lib.load_data(config, path)
    originals = {f"{w} movie number {i}" for w in ("good", "bad") for i in range(40)}
    train = [t.decode() for x, _ in data.train for t in x.numpy()]
    val = [t.decode() for x, _ in data.val for t in x.numpy()]
    assert set(val) <= originals
    assert sum(t not in originals for t in train) > len(train) // 2
