"""Head-only first stages on cached backbone outputs (what makes a search's head trials cheap):
where a model splits, that the cache is computed once and reused across runs, that the first
stage leaves the backbone untouched and later stages train the whole model, and that cached
and uncached runs learn alike."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_finetune.augmentation import ImageAugmentation
from tf_finetune.config import TrainConfig
from tf_finetune.models import applications
from tf_finetune.models import freezing
from tf_finetune.models.frozen_prefix import split_after
from tf_finetune.models.trainable import Parts
from tf_finetune.models.trainable import layer_blocks
from tf_finetune.run_dir import read_history
from tf_finetune.training import trainer as trainer_lib


def image_model(dropout=0.2, pooling="avg"):
    """A tiny 'pretrained' CNN backbone (frozen as built), pooling, dropout and a new head."""
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv2")(x)
    backbone = keras.Model(inputs, x, name="backbone")
    freezing.freeze(backbone)
    image = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0)(image)
    x = backbone(x, training=False)
    x = applications.global_pooling(pooling)(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.Model(image, keras.layers.Dense(2, activation="softmax", name="predictions")(x))


def images(n=64, seed=0):
    """Bright images are class 1, dark ones class 0: learnable from pooled features."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype("int32")
    x = rng.uniform(0, 120, (n, 8, 8, 3)).astype("float32") + 120 * labels[:, None, None, None]
    return x, labels


def batches(x, y):
    def train(seed, batch_size):
        return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(batch_size)
    return train


@pytest.mark.parametrize("pooling, width", [("avg", 6), ("max", 6), ("avgmax", 12)])
def test_split_after_cuts_after_the_backbone_and_its_pooling_not_the_dropout(pooling, width):
    model = image_model(pooling=pooling)
    prefix, top = split_after(model, model.get_layer("backbone"))
    assert prefix.output_shape == (None, width)
    assert [layer.name for layer in top.layers[1:]] == ["head_dropout", "predictions"]
    x, _ = images(4)
    np.testing.assert_allclose(top(prefix(x)), model(x), atol=1e-6)
    assert split_after(model, keras.layers.Dense(2)) is None  # not in the model


def fit(tmp_path, store, caplog, epochs=(3, 1), data_key="d", **settings):
    settings.setdefault("batch_size", 16)
    config = TrainConfig(epochs=epochs[0], fine_tune_epochs=epochs[1], learning_rate=0.05,
                         fine_tune_learning_rate=1e-3, **settings)
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    model = trainer.build_model(image_model)
    backbone = model.get_layer("backbone")
    before = [w.copy() for w in backbone.get_weights()]
    x, y = images(96, seed=0)
    vx, vy = images(48, seed=1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tf_finetune.training.trainer"):
        best = trainer.fit(model, batches(x, y), tf.data.Dataset.from_tensor_slices((vx, vy)).batch(16),
                           parts=Parts(backbone, layer_blocks(backbone)), head_cache=store, data_key=data_key)
    return best, before, backbone, read_history(str(tmp_path)), caplog.text


def test_the_head_stage_trains_on_cached_outputs_computed_once_for_every_run(tmp_path, caplog):
    store = {}
    _, before, backbone, history, log = fit(tmp_path / "a", store, caplog, epochs=(3, 0))
    assert "Cached the frozen backbone's outputs" in log and len(store) == 1
    for w0, w1 in zip(before, backbone.get_weights()):
        np.testing.assert_array_equal(w0, w1)  # the backbone stayed frozen
    assert history["val_accuracy"][-1] >= 0.9
    _, _, _, _, log = fit(tmp_path / "b", store, caplog, epochs=(3, 0))
    assert "Reusing the frozen backbone's cached outputs" in log and len(store) == 1
    # Label smoothing (one-hot labels) and another batch size reuse the same outputs.
    _, _, _, history, log = fit(tmp_path / "s", store, caplog, epochs=(3, 0), label_smoothing=0.1, batch_size=8)
    assert "Reusing" in log and len(store) == 1 and history["val_accuracy"][-1] >= 0.9
    fit(tmp_path / "c", store, caplog, epochs=(3, 0), data_key="other data")
    assert len(store) == 2  # other data: its own outputs


def test_a_later_stage_trains_the_whole_model_on_the_real_data(tmp_path, caplog):
    # The last epoch's weights (with "best", an epoch of the head stage may be kept, and with
    # it the backbone as the head stage left it).
    best, before, backbone, history, _ = fit(tmp_path, {}, caplog, epochs=(2, 2), checkpoint="last")
    assert len(history["val_accuracy"]) == 4
    assert any(not np.array_equal(w0, w1) for w0, w1 in zip(before, backbone.get_weights()))
    x, _ = images(2, seed=5)
    assert best.predict_on_batch(x).shape == (2, 2)  # the checkpoint is the whole model


def test_cached_and_uncached_head_stages_learn_alike(tmp_path, caplog):
    cached = fit(tmp_path / "cached", {}, caplog, epochs=(4, 0))[3]
    plain = fit(tmp_path / "plain", None, caplog, epochs=(4, 0))[3]
    assert abs(cached["val_accuracy"][-1] - plain["val_accuracy"][-1]) <= 0.05
    assert cached["val_loss"][-1] == pytest.approx(plain["val_loss"][-1], rel=0.25)


def test_a_head_only_plan_is_scored_on_the_cached_outputs_as_the_full_model_scores(tmp_path):
    from tf_finetune.reporting import evaluation

    def dataset(x, y):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

    (x, y), (vx, vy), (tx, ty) = images(96, seed=0), images(40, seed=1), images(24, seed=2)
    vx[:3] = 240 - vx[:3]  # a few images the model must get wrong: the misclassified grid
    store = {}
    results = {}
    for epochs in ((2, 1), (3, 0)):
        config = TrainConfig(epochs=epochs[0], fine_tune_epochs=epochs[1], learning_rate=0.05,
                             fine_tune_learning_rate=1e-3, batch_size=16)
        trainer = trainer_lib.Trainer(config, str(tmp_path / f"run{epochs}"))
        model = trainer.build_model(image_model)
        backbone = model.get_layer("backbone")
        best = trainer.fit(model, batches(x, y), dataset(vx, vy), parts=Parts(backbone, layer_blocks(backbone)),
                           head_cache=store, data_key="d")
        results[epochs] = trainer.cached_predictions({"val": dataset(vx, vy), "test": dataset(tx, ty),
                                                      "none": None})
    assert results[2, 1] is None  # the backbone trained in the second stage: the cache is stale
    cached = results[3, 0]
    assert set(cached) == {"val", "test"} and sum(k[1:] == ("test",) for k in store if isinstance(k, tuple)) == 1
    for name, (inputs, labels) in (("val", (vx, vy)), ("test", (tx, ty))):
        np.testing.assert_array_equal(cached[name][0], labels)
        np.testing.assert_allclose(cached[name][1], best.predict(inputs, verbose=0), atol=1e-5)
    # The report from cached outputs is the report from the full model, plots included.
    reports = [evaluation.write_report(best, dataset(vx, vy), ["dark", "bright"], str(tmp_path / out),
                                       test=dataset(tx, ty), predictions=predictions)
               for out, predictions in (("cached", cached), ("full", None))]
    for key in ("accuracy", "confusion_matrix", "test"):
        assert reports[0][key] == reports[1][key]
    assert reports[0]["accuracy"] < 1.0
    assert (tmp_path / "cached" / "misclassified.png").exists() and (tmp_path / "full" / "misclassified.png").exists()
    wrong = evaluation.wrong_inputs(dataset(vx, vy), *cached["val"], keep_wrong=16)
    _, _, expected = evaluation.predict_dataset(best, dataset(vx, vy), keep_wrong=16)
    assert [w[1] for w in wrong] == [w[1] for w in expected]
    for (a, _, pa), (b, _, pb) in zip(wrong, expected):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(pa, pb, atol=1e-5)


def test_only_random_augmentation_rules_caching_out():
    assert not ImageAugmentation().is_random
    assert not ImageAugmentation(rescale=1 / 255).is_random
    assert ImageAugmentation(horizontal_flip=True).is_random
    assert ImageAugmentation(width_shift_range=0.1).is_random
    assert ImageAugmentation(brightness_range=(0.8, 1.2)).is_random
