"""Reduce-on-plateau that multiplies whatever learning-rate schedule runs.

Keras's `ReduceLROnPlateau` assigns a new `optimizer.learning_rate`, which an optimizer
driven by a schedule refuses. Here the schedule is wrapped in `ScaledSchedule`, which
multiplies it by a scale held in a variable, and the trainer lowers the scale when the
monitored metric stalls (`Plateau`). The scale is part of every backup, so a resumed run goes
on at the reduced rate.
"""

import math

import keras

from tf_finetune.training import schedules


@keras.saving.register_keras_serializable(package="tf_finetune")
class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule(step) * scale`, with `scale` a variable the trainer lowers on a plateau.

    Args:
        schedule: a `LearningRateSchedule`, or a float for a constant rate.
        scale: the initial scale (1.0).
    """

    def __init__(self, schedule, scale=1.0):
        super().__init__()
        self.schedule = schedule
        self.scale = keras.Variable(float(scale), trainable=False, dtype="float32", name="lr_scale")

    def __call__(self, step):
        if isinstance(self.schedule, keras.optimizers.schedules.LearningRateSchedule):
            rate = keras.ops.cast(self.schedule(step), "float32")
        else:
            rate = keras.ops.convert_to_tensor(float(self.schedule), "float32")
        return rate * self.scale

    def get_config(self):
        return {"schedule": schedules.serialize_rate(self.schedule),
                "scale": float(keras.ops.convert_to_numpy(self.scale))}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "schedule": schedules.deserialize_rate(config["schedule"])})


class Plateau:
    """Counts epochs without improvement of a monitored value.

    Args:
        mode: "max" or "min".
        best: the best value so far (None: none yet).
        stalled: epochs since the last improvement.
    """

    def __init__(self, mode, best=None, stalled=0):
        if mode not in ("max", "min"):
            raise ValueError(f"`mode` must be 'max' or 'min'. Received: mode={mode!r}")
        self.mode = mode
        self.best = best
        self.stalled = stalled

    def update(self, value):
        """Records an epoch's value; returns True when it improved on the best."""
        if value is None or not math.isfinite(value):
            self.stalled += 1
            return False
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.stalled = float(value), 0
        else:
            self.stalled += 1
        return better

    def state(self):
        return {"best": self.best, "stalled": self.stalled}
