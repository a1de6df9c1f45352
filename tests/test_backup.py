"""Backups: only what can change, written atomically with a checksum, the previous one kept."""

import os

import keras
import numpy as np
import pytest

from tf_finetune.errors import UserError
from tf_finetune.training import backup


def compiled_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="frozen")(inputs)
    outputs = keras.layers.Dropout(0.5)(keras.layers.Dense(2, name="dense")(hidden))
    model = keras.Model(inputs, outputs)
    model.get_layer("frozen").trainable = False
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_latest_holds_what_trains_and_the_non_weight_state_only(tmp_path):
    model = compiled_model()
    backups = backup.Backup(str(tmp_path), model)
    backups.track(model.trainable_variables)
    held = {model.variables[i].path for i in backups.indices}
    seed_state = {v.path for v in model.variables if "seed_generator" in v.path}  # the dropout's
    assert len(seed_state) == 1 and held == {"dense/kernel", "dense/bias"} | seed_state  # not the frozen layer's
    model.get_layer("dense").kernel.assign(np.full((3, 2), 7.0, "float32"))
    backups.write_latest(model.optimizer, {"stage": 0, "epochs_done": 1})

    meta, arrays, optimizer_arrays = backups.read_latest()
    assert (meta["stage"], meta["epochs_done"], meta["model_count"]) == (0, 1, 3)
    np.testing.assert_array_equal(arrays[held_position(model, backups, "dense/kernel")], np.full((3, 2), 7.0))
    assert len(optimizer_arrays) == len(model.optimizer.variables)

    fresh = compiled_model()
    frozen_before = fresh.get_layer("frozen").kernel.numpy().copy()
    backup.Backup(str(tmp_path), fresh).restore(meta, arrays, source="latest.npz")
    np.testing.assert_array_equal(fresh.get_layer("dense").kernel.numpy(), np.full((3, 2), 7.0))
    # The frozen layer is not in the backup: it keeps what the model factory gave it.
    np.testing.assert_array_equal(fresh.get_layer("frozen").kernel.numpy(), frozen_before)


def held_position(model, backups, path):
    return [model.variables[i].path for i in backups.indices].index(path)


def test_writing_keeps_the_previous_backup_and_a_truncated_latest_falls_back(tmp_path, caplog):
    path = str(tmp_path / backup.LATEST)
    backup.write(path, [np.zeros(3)], {"epochs_done": 1})
    backup.write(path, [np.ones(3)], {"epochs_done": 2})
    assert sorted(os.listdir(tmp_path)) == ["latest.npz", "previous.npz"]
    arrays, meta = backup.read_newest(path)
    assert meta["epochs_done"] == 2

    with open(path, "r+b") as f:  # a half-written or damaged file
        f.truncate(os.path.getsize(path) // 2)
    with caplog.at_level("WARNING"):
        arrays, meta = backup.read_newest(path)
    assert meta["epochs_done"] == 1 and np.array_equal(arrays[0], np.zeros(3))
    assert [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()][0].endswith(
        "falling back to the one before it.")


def test_a_flipped_byte_fails_the_checksum(tmp_path):
    path = str(tmp_path / backup.LATEST)
    backup.write(path, [np.arange(1000, dtype="float32")], {"epochs_done": 1})
    data = bytearray(open(path, "rb").read())
    position = data.index(np.arange(1000, dtype="float32")[500:501].tobytes())
    data[position] ^= 0xFF  # inside the array's bytes: np.load alone would not notice
    open(path, "wb").write(bytes(data))
    with pytest.raises(backup.CorruptBackup):
        backup.read(path)
    assert backup.read_newest(path) is None  # no previous file: nothing usable


def test_workers_that_do_not_write_leave_no_files(tmp_path):
    model = compiled_model()
    backups = backup.Backup(str(tmp_path), model, write=False)
    backups.track(model.trainable_variables)
    backups.write_latest(model.optimizer, {"stage": 0, "epochs_done": 1})
    backups.write_best(backups.snapshot(), {"value": 0.5})
    assert os.listdir(tmp_path) == []


def test_assign_rejects_a_backup_of_another_model():
    model = compiled_model()
    weights = model.get_layer("dense").weights
    with pytest.raises(UserError, match="holds 1 arrays but the model has 2 variables"):
        backup.assign(weights, [np.zeros((3, 2))], source="latest.npz")
    with pytest.raises(UserError, match=r"has shape \(3, 2\), the file \(4, 2\)"):
        backup.assign(weights, [np.zeros((4, 2)), np.zeros(2)], source="latest.npz")
