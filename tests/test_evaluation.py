"""The classification run report: metrics, plots, misclassified images, augmentation preview."""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from tf_finetune.reporting import evaluation


def always_class_zero(num_classes=3):
    """A model that predicts class 0 for every image."""
    inputs = keras.Input((8, 8, 3))
    logits = keras.layers.Lambda(lambda x: tf.zeros_like(x[:, 0, 0, :1]) + tf.constant([[5.0, 0.0, 0.0]]))(inputs)
    return keras.Model(inputs, keras.layers.Softmax()(logits))


def images_dataset(labels):
    images = np.random.default_rng(0).uniform(0, 255, (len(labels), 8, 8, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((images, np.array(labels))).batch(4)


def test_misclassified_images_are_collected_and_drawn(tmp_path):
    labels = [0, 1, 2, 0, 1, 0, 0, 2, 1, 0]  # 5 wrong
    report = evaluation.write_report(always_class_zero(), images_dataset(labels), ["a", "b", "c"], str(tmp_path))
    assert report["accuracy"] == 0.5
    _, _, wrong = evaluation.predict_dataset(always_class_zero(), images_dataset(labels), keep_wrong=16)
    assert [t for _, t, _ in wrong] == [1, 2, 1, 2, 1]
    assert all(p.argmax() == 0 for _, _, p in wrong)
    assert (tmp_path / "misclassified.png").stat().st_size > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy"] == 0.5


def test_keep_wrong_caps_the_examples_and_a_perfect_model_draws_none(tmp_path):
    _, _, wrong = evaluation.predict_dataset(always_class_zero(), images_dataset([1] * 10), keep_wrong=3)
    assert len(wrong) == 3
    evaluation.write_report(always_class_zero(), images_dataset([0] * 6), ["a", "b", "c"], str(tmp_path))
    assert not os.path.exists(tmp_path / "misclassified.png")


def test_augmentation_preview_draws_originals_and_versions(tmp_path):
    calls = []

    def augmentation(batch, training):
        calls.append((np.shape(batch), training))
        return np.asarray(batch)[:, ::-1]

    path = evaluation.write_augmentation_preview(augmentation, images_dataset([0, 1, 2, 0]),
                                                 str(tmp_path / "aug.png"), images=2, versions=3)
    assert calls == [((3, 8, 8, 3), True)] * 2
    assert os.path.getsize(path) > 0
