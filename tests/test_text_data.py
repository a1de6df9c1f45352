"""tf_finetune.text_data: text settings, the augmentation switch, CLI inputs, the TFDS variant."""

import pytest
import tensorflow as tf

from tf_finetune.data import text_data as data_lib
from tf_finetune.errors import UserError
from tf_finetune.augmentation.text_augmentation import TextAugmentation
from tf_finetune.data.text_data import TextDataConfig


def test_rates_outside_0_1_are_rejected_with_the_flag():
    with pytest.raises(UserError, match="--word-swap must be in"):
        TextDataConfig(word_swap=1.0)


def test_known_datasets_name_their_integer_classes():
    assert TextDataConfig(dataset="sst2").resolved_class_names() == ("negative", "positive")
    assert TextDataConfig(dataset="sst2", class_names=("a", "b")).resolved_class_names() == ("a", "b")
    assert TextDataConfig(dataset="mine").resolved_class_names() is None


def test_augmentation_is_off_by_default_and_built_from_the_rates():
    assert data_lib.make_augmentation(TextDataConfig()) is None
    aug = data_lib.make_augmentation(TextDataConfig(word_deletion=0.1, word_swap=0.2, seed=3))
    assert isinstance(aug, TextAugmentation)
    assert (aug.word_deletion, aug.word_swap, aug.seed) == (0.1, 0.2, 3)


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
    train, val, info = data_lib._read_tfds(TextDataConfig(dataset="imdb"))
    assert train.class_names == val.class_names == ("negative", "positive")
    assert train.texts == ("great", "awful", "fine", "bad") and val.labels == (1, 0)
    assert info["split"] == "tfds train/test"
