import os

import keras
import numpy as np
import pytest

from tf_finetune.training import backup
from tf_finetune.errors import UserError


def compiled_model():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def end_epoch(callback, epoch, **logs):
    callback.model.get_layer("dense").kernel.assign(np.full((4, 2), float(epoch), "float32"))
    callback.on_epoch_end(epoch, {"loss": 1.0, **logs})


def test_best_follows_the_monitor_and_latest_every_epoch(tmp_path):
    model = compiled_model()
    callback = backup.EpochBackup(str(tmp_path), phase=1, monitor="val_accuracy", mode="max")
    callback.set_model(model)
    for epoch, accuracy in enumerate([0.5, 0.7, 0.6]):
        end_epoch(callback, epoch, val_accuracy=accuracy)

    best = backup.Snapshot.read(str(tmp_path / backup.BEST))
    assert (best.value, best.epoch) == (0.7, 2)
    np.testing.assert_array_equal(best.weights[0], np.full((4, 2), 1.0))  # the kernel at epoch index 1
    assert callback.best.epoch == 2
    meta, weights, optimizer_variables = backup.read_state(str(tmp_path / backup.LATEST))
    assert meta == {"phase": 1, "epochs_done": 3, "best": 0.7, "model_count": 2,
                    "optimizer_count": len(model.optimizer.variables)}
    np.testing.assert_array_equal(weights[0], np.full((4, 2), 2.0))
    assert len(optimizer_variables) == len(model.optimizer.variables)


def test_min_mode_and_a_best_from_an_earlier_phase(tmp_path):
    model = compiled_model()
    earlier = backup.Snapshot([w.copy() for w in model.get_weights()], value=0.3, epoch=2)
    callback = backup.EpochBackup(str(tmp_path), phase=2, monitor="val_loss", mode="min", best=earlier)
    callback.set_model(model)
    end_epoch(callback, 2, val_loss=0.4)  # worse than phase 1's best
    assert callback.best is earlier and not os.path.exists(tmp_path / backup.BEST)
    end_epoch(callback, 3, val_loss=0.2)
    assert (callback.best.value, callback.best.epoch) == (0.2, 4)


def test_a_nan_epoch_is_never_backed_up(tmp_path):
    model = compiled_model()
    callback = backup.EpochBackup(str(tmp_path), phase=1, monitor="val_accuracy", mode="max")
    callback.set_model(model)
    callback.on_epoch_end(0, {"loss": float("nan"), "val_accuracy": 0.9})
    assert os.listdir(tmp_path) == [] and callback.best is None


def test_workers_that_do_not_write_still_track_the_best(tmp_path):
    model = compiled_model()
    callback = backup.EpochBackup(str(tmp_path), phase=1, monitor="val_accuracy", mode="max", write=False)
    callback.set_model(model)
    end_epoch(callback, 0, val_accuracy=0.5)
    assert os.listdir(tmp_path) == [] and callback.best.value == 0.5


def test_assign_rejects_a_backup_of_another_model(tmp_path):
    model = compiled_model()
    with pytest.raises(UserError, match="holds 1 arrays but the model has 2 variables"):
        backup.assign(model.weights, [np.zeros((4, 2))], source="latest.npz")
    with pytest.raises(UserError, match=r"has shape \(4, 2\), the file \(3, 2\)"):
        backup.assign(model.weights, [np.zeros((3, 2)), np.zeros(2)], source="latest.npz")


def test_a_corrupt_backup_is_one_clear_error(tmp_path):
    path = tmp_path / backup.LATEST
    path.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable training backup.*delete it"):
        backup.read_state(str(path))
