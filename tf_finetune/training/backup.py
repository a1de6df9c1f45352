"""Training state that survives a crash, saved after every epoch at the cost of a copy.

Keras's `BackupAndRestore` and `ModelCheckpoint` save through `model.save_weights` and
`model.save`, which walk the model object by object in Python. For plant_cnn's MobileNetV2 that
is 0.7-1.0 s per save (cProfile of a 4-epoch run), as long as a third of a short epoch. After a
crash they also forget the checkpoint's best value, so a resumed run may overwrite a better
best model with a worse one.

`EpochBackup` instead copies the variables to NumPy (milliseconds) and writes them with one
`np.savez`, renamed into place so a kill never leaves half a file:

```
BACKUP/latest.npz   after every epoch: the model's variables (weights and the random-seed
                    states of layers such as Dropout), the optimizer's, the phase, the number
                    of epochs done and the best monitored value so far
BACKUP/best.npz     when the monitored value improves: the model's weights and that value
```

The best weights are also kept in memory (`EpochBackup.best`): the trainer puts them back
into the model at the end of training (what `EarlyStopping(restore_best_weights=True)` does)
and writes `best.keras` once from there.

Variables are matched by position in `model.variables` / `optimizer.variables`, as
`model.set_weights` does; a backup is only read into the model it was written from (the run
directory pins the config), and a mismatch in count or shapes is an error, not a guess.
"""

import json
import logging
import math
import os
import zipfile

import keras
import numpy as np

from tf_finetune import files
from tf_finetune.errors import UserError

logger = logging.getLogger(__name__)

LATEST = "latest.npz"
BEST = "best.npz"


class EpochBackup(keras.callbacks.Callback):
    """Writes `latest.npz` after every epoch and `best.npz` when `monitor` improves.

    Args:
        directory: the backup folder.
        phase: training phase number, recorded so a resumed run knows where it stopped.
        monitor: the log key that decides the best epoch, e.g. `"val_accuracy"`.
        mode: `"max"` or `"min"`.
        best: a `Snapshot` of the best epoch so far (from an earlier phase or process), or None.
        model_to_save: the model whose weights are backed up; defaults to the fitted model.
            With a cached frozen prefix `fit` trains only the model's top, but the backup is of
            the whole model.
        write: False on workers that only compute (multi-worker training): they keep the best
            weights in memory but leave the files to the chief.
    """

    def __init__(self, directory, *, phase, monitor, mode, best=None, model_to_save=None, write=True):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"`mode` must be 'max' or 'min'. Received: mode={mode!r}")
        self.directory = directory
        self.phase = phase
        self.monitor = monitor
        self.mode = mode
        self.best = best
        self.write = write
        self._model_to_save = model_to_save
        self._warned = False
        self._read_variables = self._read_optimizer = None

    @property
    def saved_model(self):
        return self._model_to_save or self.model

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            return  # Never back up weights that went NaN; resuming from them would be useless.
        value = logs.get(self.monitor)
        if value is None and not self._warned:
            logger.warning("%s is not in the epoch logs (%s); the last epoch counts as the best.",
                           self.monitor, ", ".join(sorted(logs)))
            self._warned = True
        if self._read_variables is None:
            variables = self.saved_model.variables
            self._read_variables = VariableReader(variables)
            self._read_optimizer = VariableReader(self.model.optimizer.variables)
            averages = moving_averages(self.model.optimizer)
            self._read_averaged = averages and VariableReader([averages.get(id(v), v) for v in variables])
            position = {id(v): i for i, v in enumerate(variables)}
            self._weight_positions = [position[id(w)] for w in self.saved_model.weights]
        state = self._read_variables()
        # With an optimizer's moving average (use_ema), validation ran on the average
        # (keras.callbacks.SwapEMAWeights), so the best snapshot is the average too.
        averaged = self._read_averaged() if self._read_averaged else state
        if value is None or self.best is None or self._improves(float(value)):
            weights = [averaged[i] for i in self._weight_positions]
            self.best = Snapshot(weights, value=None if value is None else float(value), epoch=epoch + 1)
            if self.write:
                self.best.write(os.path.join(self.directory, BEST))
        if self.write:
            # Keras's fit ends by putting the average into the model
            # (`optimizer.finalize_variable_values`), so the backup of a fit's last epoch holds
            # it too: a run resumed from there goes on from the same weights.
            last = epoch == (self.params or {}).get("epochs", 0) - 1
            write_state(
                os.path.join(self.directory, LATEST),
                model_variables=averaged if last else state,
                optimizer_variables=self._read_optimizer(),
                phase=self.phase,
                epochs_done=epoch + 1,
                best=None if self.best is None else self.best.value,
            )

    def _improves(self, value):
        if not math.isfinite(value):
            return False
        if self.best.value is None:
            return True
        return value > self.best.value if self.mode == "max" else value < self.best.value


def moving_averages(optimizer):
    """`{id(variable): its moving average}` for an optimizer with `use_ema=True`, else `{}`."""
    if not getattr(optimizer, "use_ema", False):
        return {}
    # Keras keeps the averages in this private list, in the order of the optimizer's
    # trainable variables; keras.callbacks.SwapEMAWeights reads them the same way.
    return {id(v): average for v, average in
            zip(optimizer._trainable_variables, optimizer._model_variables_moving_average)}


class Snapshot:
    """A model's weights (NumPy arrays) at one epoch, with the monitored value then."""

    def __init__(self, weights, value, epoch):
        self.weights = weights
        self.value = value
        self.epoch = epoch

    def write(self, path):
        _savez(path, self.weights, {"value": self.value, "epoch": self.epoch, "count": len(self.weights)})

    @classmethod
    def read(cls, path):
        """The snapshot at `path`, or None when there is none."""
        if not os.path.exists(path):
            return None
        arrays, meta = _loadz(path)
        return cls(arrays, meta["value"], meta["epoch"])


def write_state(path, *, model_variables, optimizer_variables, phase, epochs_done, best):
    meta = {"phase": phase, "epochs_done": epochs_done, "best": best,
            "model_count": len(model_variables), "optimizer_count": len(optimizer_variables)}
    _savez(path, list(model_variables) + list(optimizer_variables), meta)


def read_state(path):
    """(meta, model variable arrays, optimizer arrays) of a `latest.npz`, or None when there is none."""
    if not os.path.exists(path):
        return None
    arrays, meta = _loadz(path)
    n = meta["model_count"]
    return meta, arrays[:n], arrays[n:]


class VariableReader:
    """Copies a fixed list of variables to NumPy arrays with one TensorFlow op.

    One `tf.identity_n` over all of them: 19 ms for MobileNetV2's 580 model and optimizer
    variables, against 70-150 ms converting them one by one (measured on 2 CPU cores).
    """

    def __init__(self, variables):
        self._values = [v.value for v in variables]

    def __call__(self):
        import tensorflow as tf

        if not self._values:
            return []
        return [np.array(t) for t in tf.identity_n(self._values)]


def assign(variables, arrays, *, source):
    """Assigns `arrays` to `variables` in order; `source` names the file for errors."""
    variables = list(variables)
    if len(variables) != len(arrays):
        raise UserError(
            f"{source} holds {len(arrays)} arrays but the model has {len(variables)} variables: "
            "it was written by another model. Delete it to start over, or pass a new --output-dir."
        )
    for variable, array in zip(variables, arrays):
        if tuple(variable.shape) != array.shape:
            raise UserError(
                f"{source} does not match the model ({variable.path} has shape {tuple(variable.shape)}, "
                f"the file {array.shape}). Delete it to start over, or pass a new --output-dir."
            )
    for variable, array in zip(variables, arrays):
        variable.assign(array)


def _savez(path, arrays, meta):
    with files.atomic_path(path) as temp_path:
        with open(temp_path, "wb") as f:
            np.savez(f, *arrays, meta=np.array(json.dumps(meta)))


def _loadz(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = [data[f"arr_{i}"] for i in range(len(data.files) - 1)]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise UserError(
            f"{path} is not a readable training backup ({e}): delete it to start that phase over."
        ) from None
    return arrays, meta
