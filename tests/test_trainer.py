import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_finetune.config import TrainConfig
from tf_finetune.errors import UserError
from tf_finetune.run_dir import RunDir
from tf_finetune.run_dir import read_history
from tf_finetune.training import backup
from tf_finetune.training import callbacks
from tf_finetune.training import trainer as trainer_lib


def data(n=64, seed=0, nan=False, shuffle=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype("int32")
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32") + y[:, None, None, None]
    if nan:
        x[:] = np.nan
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:  # a new order every epoch, and random noise drawn per batch
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(16)
        noise = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        return tf.data.Dataset.zip(ds, noise).map(
            lambda batch, pair: (batch[0] + tf.random.stateless_normal(tf.shape(batch[0]), pair, dtype=batch[0].dtype), batch[1]))
    return ds.batch(16)


def model_fn():
    # A 'backbone' with BatchNorm, called with training=False as in transfer learning.
    b_in = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, name="conv_a")(b_in)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Conv2D(4, 3, name="conv_b")(h)
    backbone = keras.Model(b_in, h, name="backbone")
    backbone.trainable = False
    inputs = keras.Input((8, 8, 3))
    x = backbone(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))


def fit(trainer, model, train, val):
    """`trainer.fit` with the model's pretrained part named, as the CLI does."""
    return trainer.fit(model, train, val, backbone=model.get_layer("backbone"))


def weights_of(model, name):
    return [w.copy() for w in model.get_layer("backbone").get_layer(name).get_weights()]


def test_two_phases_freeze_then_fine_tune_top(tmp_path):
    config = TrainConfig(epochs=2, fine_tune_epochs=2, unfreeze_top=1, batch_size=16, learning_rate=0.01,
                         fine_tune_learning_rate=0.01)
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    model = trainer.build_model(model_fn)
    before = {n: weights_of(model, n) for n in ("conv_a", "bn", "conv_b")}
    best = fit(trainer, model, data(), data(seed=1))

    # Phase 2 unfroze only the top backbone layer: conv_b changed, conv_a and BN did not.
    for w0, w1 in zip(before["conv_a"], weights_of(model, "conv_a")):
        np.testing.assert_array_equal(w0, w1)
    for w0, w1 in zip(before["bn"], weights_of(model, "bn")):
        np.testing.assert_array_equal(w0, w1)
    assert any(not np.array_equal(w0, w1) for w0, w1 in zip(before["conv_b"], weights_of(model, "conv_b")))

    history = read_history(str(tmp_path))
    assert len(history["loss"]) == 4 and len(history["val_accuracy"]) == 4
    assert isinstance(best, keras.Model)
    assert RunDir(str(tmp_path)).phase_boundaries() == [2]


def test_phase_one_trains_the_head_only(tmp_path):
    config = TrainConfig(epochs=2, fine_tune_epochs=0, batch_size=16, learning_rate=0.01)
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    model = trainer.build_model(model_fn)
    backbone_before = [w.copy() for w in model.get_layer("backbone").get_weights()]
    head_before = model.get_layer("head").get_weights()[0].copy()
    trainer.fit(model, data(), data(seed=1))
    for w0, w1 in zip(backbone_before, model.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(w0, w1)
    assert not np.array_equal(head_before, model.get_layer("head").get_weights()[0])


def test_rerun_skips_finished_phases(tmp_path):
    config = TrainConfig(epochs=1, fine_tune_epochs=0, batch_size=16)
    first = trainer_lib.Trainer(config, str(tmp_path)).fit(model_fn(), data(), data(seed=1))
    rows_before = len(read_history(str(tmp_path))["loss"])
    mtime = os.path.getmtime(tmp_path / "checkpoints" / "best.keras")
    again = trainer_lib.Trainer(config, str(tmp_path)).fit(model_fn(), data(), data(seed=1))
    assert os.path.getmtime(tmp_path / "checkpoints" / "best.keras") == mtime
    assert len(read_history(str(tmp_path))["loss"]) == rows_before
    for w0, w1 in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    assert not os.path.exists(tmp_path / "backup")  # removed once best.keras is written


class Crash(Exception):
    pass


def crash_after_epoch(monkeypatch, epochs_done):
    """Makes training die right after the backup of epoch `epochs_done` (1-based) is written."""
    write = backup.EpochBackup.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        write(self, epoch, logs)
        if epoch + 1 == epochs_done:
            raise Crash(f"killed after epoch {epochs_done}")

    monkeypatch.setattr(backup.EpochBackup, "on_epoch_end", on_epoch_end)


@pytest.mark.parametrize("ema", [0.0, 0.9], ids=["plain", "ema"])
@pytest.mark.parametrize("crash_at", [1, 2, 3], ids=["in_phase1", "between_phases", "in_phase2"])
def test_a_rerun_after_a_crash_ends_like_an_uninterrupted_run(tmp_path, monkeypatch, crash_at, ema):
    config = TrainConfig(epochs=2, fine_tune_epochs=2, unfreeze_top=1, batch_size=16, learning_rate=0.01,
                         fine_tune_learning_rate=0.01, ema_momentum=ema)
    def run(name):  # a fresh process: new model, new datasets
        trainer = trainer_lib.Trainer(config, str(tmp_path / name))
        return fit(trainer, trainer.build_model(model_fn), data(shuffle=True), data(seed=1))

    expected = run("whole")
    with monkeypatch.context() as patch:
        crash_after_epoch(patch, crash_at)
        with pytest.raises(Crash):
            run("killed")
    assert not os.path.exists(tmp_path / "killed" / "checkpoints" / "best.keras")
    resumed = run("killed")

    # Same weights, optimizer and dropout state at the crash, the same learning-rate steps
    # and the same shuffles and noise (epoch k's) after it.
    for w0, w1 in zip(expected.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(w0, w1, rtol=1e-5, atol=1e-6)
    whole = read_history(str(tmp_path / "whole"))
    killed = read_history(str(tmp_path / "killed"))
    np.testing.assert_allclose(killed["learning_rate"], whole["learning_rate"], rtol=1e-6)
    np.testing.assert_allclose(killed["val_loss"], whole["val_loss"], rtol=1e-4)
    assert len(killed["loss"]) == 4


def test_ema_validates_and_keeps_the_moving_average(tmp_path, monkeypatch):
    """With --ema-momentum, each epoch's validation and the best model are the weights' average."""
    raw_heads = []  # the head's trained (not averaged) kernel at each epoch's end
    write = backup.EpochBackup.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        raw_heads.append(self.model.get_layer("head").kernel.numpy().copy())
        write(self, epoch, logs)

    monkeypatch.setattr(backup.EpochBackup, "on_epoch_end", on_epoch_end)
    config = TrainConfig(epochs=3, fine_tune_epochs=0, batch_size=16, learning_rate=0.05,
                         ema_momentum=0.9, monitor="val_loss")
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    model = trainer.fit(trainer.build_model(model_fn), data(), data(seed=1))

    history = read_history(str(tmp_path))
    best = int(np.argmin(history["val_loss"]))
    loss, accuracy = model.evaluate(data(seed=1), verbose=0)
    # The logged validation of the best epoch is the returned model's: the average was
    # validated and kept, not the weights the last step left.
    np.testing.assert_allclose(loss, history["val_loss"][best], rtol=1e-5)
    np.testing.assert_allclose(accuracy, history["val_accuracy"][best], rtol=1e-6)
    assert np.abs(model.get_layer("head").kernel.numpy() - raw_heads[best]).max() > 1e-3
    assert not os.path.exists(tmp_path / "backup")


def test_nan_loss_is_a_clear_error(tmp_path):
    config = TrainConfig(epochs=1, batch_size=16)
    with pytest.raises(UserError, match="lower --learning-rate"):
        trainer_lib.Trainer(config, str(tmp_path)).fit(model_fn(), data(nan=True), data(seed=1))


def plain_model():
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs)))


def test_nothing_to_unfreeze_trains_one_phase_and_says_so(tmp_path, caplog):
    config = TrainConfig(epochs=2, fine_tune_epochs=3, batch_size=16)
    # No pretrained part at all, and a backbone that was never frozen.
    trainable = model_fn()
    trainable.get_layer("backbone").trainable = True
    for name, model, backbone, reason in (
        ("none", plain_model(), None, "this model has no pretrained backbone to unfreeze"),
        ("trainable", trainable, trainable.get_layer("backbone"), "all layers of 'backbone' are trainable already"),
    ):
        with caplog.at_level("INFO", logger="tf_finetune"):
            trainer_lib.Trainer(config, str(tmp_path / name)).fit(model, data(), data(seed=1), backbone=backbone)
        lines = [r.getMessage() for r in caplog.records if "one phase" in r.getMessage()]
        assert lines == [f"Training in one phase of 2 epochs: {reason}, so --fine-tune-epochs 3 is not used."]
        caplog.clear()
        assert len(read_history(str(tmp_path / name))["loss"]) == 2
        assert RunDir(str(tmp_path / name)).read_state()["phases"] == [
            {"number": 1, "name": "head", "first_epoch": 0, "epochs_run": 2}]


def test_only_a_fine_tune_phase_with_nothing_to_unfreeze_is_a_clear_error(tmp_path):
    config = TrainConfig(epochs=0, fine_tune_epochs=1, batch_size=16)
    with pytest.raises(UserError, match="--epochs 0 leaves only the fine-tune phase, but this model has no pretrained"):
        trainer_lib.Trainer(config, str(tmp_path)).fit(plain_model(), data(), data(seed=1))
    assert not os.path.exists(tmp_path / "checkpoints")


def test_unfreezable_parameters_are_counted_without_changing_the_model():
    from tf_finetune.models import freezing

    model = model_fn()
    backbone = model.get_layer("backbone")
    flags = [layer.trainable for layer in backbone._flatten_layers()]
    # conv_b (3*3*4*4 + 4) is the top layer, then BatchNorm (stays frozen), then conv_a
    # (3*3*3*4 + 4).
    assert freezing.frozen_params_in_top(backbone, 1) == 148
    assert freezing.frozen_params_in_top(backbone, -1) == 148 + 112
    assert [layer.trainable for layer in backbone._flatten_layers()] == flags
    assert not backbone.trainable_weights


def test_read_history_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    (tmp_path / "history.csv").write_text(
        "epoch,accuracy,loss\n0,0.5,1.0\n1,0.6,0.9\nepoch,accuracy,loss\n1,0.7,0.8\n2,0.8,0.7\n")
    assert read_history(str(tmp_path)) == {"accuracy": [0.5, 0.7, 0.8], "loss": [1.0, 0.8, 0.7]}


def test_history_records_the_learning_rate_of_each_phase(tmp_path):
    config = TrainConfig(epochs=2, fine_tune_epochs=1, unfreeze_top=-1, batch_size=16,
                         lr_schedule="constant", learning_rate=0.01, fine_tune_learning_rate=0.001)
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    fit(trainer, model_fn(), data(), data(seed=1))
    np.testing.assert_allclose(read_history(str(tmp_path))["learning_rate"],
                               [0.01, 0.01, 0.001], rtol=1e-6)


def test_mixed_precision_applies_to_the_model_only(tmp_path):
    config = TrainConfig(mixed_precision=True)
    before = keras.config.dtype_policy().name
    model = trainer_lib.Trainer(config, str(tmp_path)).build_model(model_fn)
    assert model.get_layer("backbone").get_layer("conv_a").dtype_policy.name == "mixed_float16"
    assert keras.config.dtype_policy().name == before  # no global policy left behind


def test_tensorboard_gets_one_summary_per_epoch(tmp_path):
    config = TrainConfig(epochs=2, fine_tune_epochs=0, batch_size=16)
    trainer_lib.Trainer(config, str(tmp_path)).fit(model_fn(), data(), data(seed=1))
    steps = {}
    for root, _, names in os.walk(tmp_path / "logs"):
        for name in names:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                for value in event.summary.value:
                    steps.setdefault(value.tag, []).append(event.step)
    assert steps["epoch_loss"] == [0, 1, 0, 1]  # train and validation writers
    assert steps["epoch_learning_rate"] == [0, 1]
    assert not any(tag.startswith("batch_") for tag in steps)


def test_epoch_tensorboard_refuses_batch_summaries(tmp_path):
    with pytest.raises(ValueError, match="logs epochs only"):
        callbacks.EpochTensorBoard(str(tmp_path), update_freq="batch")
