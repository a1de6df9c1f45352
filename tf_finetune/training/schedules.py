"""Learning-rate schedules from a config, with linear warmup.

`build_schedule` returns what a Keras optimizer accepts as `learning_rate`: a plain float for
a constant rate, otherwise a `keras.optimizers.schedules.LearningRateSchedule`. The decay
itself is always a schedule Keras provides (`PolynomialDecay` with power 1 for linear,
`ExponentialDecay`, `CosineDecay`, `CosineDecayRestarts`); this module only adds `LinearWarmup` in front of the ones that have
no warmup of their own.

Warmup convention (the same as Keras `CosineDecay(warmup_target=..., warmup_steps=...)`):
the rate rises linearly from 0 at step 0 to the target at step `warmup_steps`, i.e.
`lr(step) = target * step / warmup_steps` for `step < warmup_steps`, and from then on the
wrapped schedule runs from its own step 0: `lr(step) = schedule(step - warmup_steps)`.
Steps are optimizer steps (`optimizer.iterations`), counted from 0.
"""

import keras
from keras import ops

from tf_finetune.config import LR_SCHEDULES as SCHEDULE_NAMES


@keras.saving.register_keras_serializable(package="tf_finetune")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 in front of another schedule (or a constant rate).

    For `step < warmup_steps` the rate is `target * step / warmup_steps`, where `target` is
    the wrapped schedule's rate at its step 0; afterwards it is
    `schedule(step - warmup_steps)`.

    Args:
        schedule: a `LearningRateSchedule`, or a float for a constant rate after warmup.
        warmup_steps: number of warmup steps, at least 1.
        name: optional name for the ops.
    """

    def __init__(self, schedule, warmup_steps, name="LinearWarmup"):
        super().__init__()
        if int(warmup_steps) < 1:
            raise ValueError(
                f"`warmup_steps` must be at least 1. Received: warmup_steps={warmup_steps!r}"
            )
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)
        self.name = name

    def _after_warmup(self, step):
        if isinstance(self.schedule, keras.optimizers.schedules.LearningRateSchedule):
            return ops.cast(self.schedule(step), "float32")
        return ops.convert_to_tensor(float(self.schedule), "float32")

    def __call__(self, step):
        with keras.name_scope(self.name):
            step = ops.cast(step, "float32")
            warmup_steps = ops.cast(self.warmup_steps, "float32")
            # 1) linear warmup from 0 towards the wrapped schedule's first rate
            target = self._after_warmup(ops.zeros((), "float32"))
            warming = target * step / warmup_steps
            # 2) the wrapped schedule, restarted at 0 when warmup ends
            after = self._after_warmup(ops.maximum(step - warmup_steps, 0.0))
            return ops.where(step < warmup_steps, warming, after)

    def get_config(self):
        return {"schedule": serialize_rate(self.schedule), "warmup_steps": self.warmup_steps, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "schedule": deserialize_rate(config["schedule"])})


def serialize_rate(rate):
    """A learning rate (a float or a `LearningRateSchedule`) as a config value."""
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return keras.optimizers.schedules.serialize(rate)
    return float(rate)


def deserialize_rate(value):
    """The inverse of `serialize_rate`."""
    return keras.optimizers.schedules.deserialize(value) if isinstance(value, dict) else value


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )


def _check_number(name, value, low, high, low_inclusive=True):
    valid = not isinstance(value, bool) and isinstance(value, (int, float))
    if valid:
        valid = (value >= low if low_inclusive else value > low) and value <= high
    if not valid:
        bracket = "[" if low_inclusive else "("
        raise ValueError(
            f"`{name}` must be a number in {bracket}{low}, {high}]. Received: {name}={value!r}"
        )


def build_schedule(
    name,
    learning_rate,
    total_steps,
    *,
    warmup_steps=0,
    decay_steps=None,
    decay_rate=0.96,
    first_decay_steps=None,
    t_mul=2.0,
    m_mul=1.0,
    alpha=0.0,
):
    """Build a learning-rate schedule for a Keras optimizer.

    Args:
        name: one of 'constant', 'linear' (decay to 0 at `total_steps`, the BERT recipe),
            'exponential', 'cosine', 'cosine_restarts'.
        learning_rate: the peak rate (after warmup), > 0.
        total_steps: number of optimizer steps in the whole run, >= 1.
        warmup_steps: linear warmup from 0 over this many steps, `0 <= warmup_steps <
            total_steps`. See the module docstring for the exact convention.
        decay_steps: 'exponential' only: the rate is multiplied by `decay_rate` every
            `decay_steps` steps (smoothly). Defaults to `total_steps - warmup_steps`, so the
            run ends at `learning_rate * decay_rate`.
        decay_rate: 'exponential' only, > 0.
        first_decay_steps: 'cosine_restarts' only: length of the first cosine cycle.
            Defaults to `(total_steps - warmup_steps) // 4`, at least 1.
        t_mul: 'cosine_restarts' only: each cycle is `t_mul` times longer than the last.
        m_mul: 'cosine_restarts' only: each cycle starts at `m_mul` times the last peak.
        alpha: 'cosine' and 'cosine_restarts': the minimum rate as a fraction of
            `learning_rate`, in [0, 1]. 'cosine' ends at `alpha * learning_rate`.

    Returns:
        A float (for 'constant' without warmup) or a
        `keras.optimizers.schedules.LearningRateSchedule`.
    """
    # 1) validate
    if name not in SCHEDULE_NAMES:
        expected = ", ".join(repr(n) for n in SCHEDULE_NAMES)
        raise ValueError(f"Unknown schedule. Expected one of {expected}. Received: name={name!r}")
    _check_number("learning_rate", learning_rate, 0, float("inf"), low_inclusive=False)
    _check_int("total_steps", total_steps, 1)
    _check_int("warmup_steps", warmup_steps, 0)
    if warmup_steps >= total_steps:
        raise ValueError(
            "`warmup_steps` must be less than `total_steps`. "
            f"Received: warmup_steps={warmup_steps}, total_steps={total_steps}"
        )
    _check_number("alpha", alpha, 0.0, 1.0)
    learning_rate = float(learning_rate)
    decay_total = total_steps - warmup_steps  # steps left after warmup

    # 2) the schedule after warmup
    if name == "constant":
        schedule = learning_rate
    elif name == "linear":
        schedule = keras.optimizers.schedules.PolynomialDecay(
            learning_rate, decay_steps=decay_total, end_learning_rate=0.0, power=1.0
        )
    elif name == "exponential":
        if decay_steps is None:
            decay_steps = decay_total
        _check_int("decay_steps", decay_steps, 1)
        _check_number("decay_rate", decay_rate, 0, float("inf"), low_inclusive=False)
        schedule = keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=decay_steps, decay_rate=float(decay_rate)
        )
    elif name == "cosine":
        # CosineDecay warms up by itself (linearly from initial_learning_rate=0).
        if warmup_steps:
            return keras.optimizers.schedules.CosineDecay(
                0.0,
                decay_steps=decay_total,
                alpha=float(alpha),
                warmup_target=learning_rate,
                warmup_steps=warmup_steps,
            )
        return keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=decay_total, alpha=float(alpha)
        )
    else:  # cosine_restarts
        if first_decay_steps is None:
            first_decay_steps = max(1, decay_total // 4)
        _check_int("first_decay_steps", first_decay_steps, 1)
        _check_number("t_mul", t_mul, 0, float("inf"), low_inclusive=False)
        _check_number("m_mul", m_mul, 0, float("inf"), low_inclusive=False)
        schedule = keras.optimizers.schedules.CosineDecayRestarts(
            learning_rate,
            first_decay_steps=first_decay_steps,
            t_mul=float(t_mul),
            m_mul=float(m_mul),
            alpha=float(alpha),
        )

    # 3) linear warmup in front
    if warmup_steps:
        return LinearWarmup(schedule, warmup_steps)
    return schedule
