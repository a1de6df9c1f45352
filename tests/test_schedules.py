import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.helpers import assert_saves_and_reloads  # noqa: E402
from tf_finetune.training.schedules import LinearWarmup, build_schedule  # noqa: E402


def lr_at(schedule, step):
    if isinstance(schedule, float):
        return schedule
    return float(keras.ops.convert_to_numpy(schedule(step)))


def check(kwargs, cases):
    schedule = build_schedule(**kwargs)
    for step, expected in cases:
        assert lr_at(schedule, step) == pytest.approx(expected, rel=1e-5, abs=1e-7), step


# Every expected value below is worked out by hand from the formula in the comment.
CASES = {
    # constant: lr
    "constant": (
        dict(name="constant", learning_rate=0.1, total_steps=100),
        [(0, 0.1), (50, 0.1), (1000, 0.1)],
    ),
    # warmup: lr * step / warmup_steps, then lr
    "constant_warmup": (
        dict(name="constant", learning_rate=0.1, total_steps=100, warmup_steps=10),
        [(0, 0.0), (5, 0.05), (9, 0.09), (10, 0.1), (99, 0.1)],
    ),
    # lr * (1 - step / total): reaches 0 at the last step and stays there
    "linear": (
        dict(name="linear", learning_rate=0.1, total_steps=100),
        [(0, 0.1), (25, 0.075), (50, 0.05), (100, 0.0), (150, 0.0)],
    ),
    # warmup over 10 steps, then lr * (1 - (step - 10) / 90): the BERT recipe
    "linear_warmup": (
        dict(name="linear", learning_rate=0.1, total_steps=100, warmup_steps=10),
        [(0, 0.0), (5, 0.05), (10, 0.1), (55, 0.05), (100, 0.0)],
    ),
    # lr * rate ** (step / decay_steps)
    "exponential": (
        dict(name="exponential", learning_rate=0.1, total_steps=100, decay_rate=0.5,
             decay_steps=10),
        [(0, 0.1), (5, 0.0707106781), (10, 0.05), (20, 0.025)],
    ),
    # warmup 4 steps, then the decay restarted at step 4
    "exponential_warmup": (
        dict(name="exponential", learning_rate=0.1, total_steps=100, warmup_steps=4,
             decay_rate=0.5, decay_steps=10),
        [(0, 0.0), (2, 0.05), (4, 0.1), (14, 0.05), (24, 0.025)],
    ),
    # default decay_steps = total - warmup = 40: ends at lr * rate
    "exponential_default_decay_steps": (
        dict(name="exponential", learning_rate=0.2, total_steps=50, warmup_steps=10,
             decay_rate=0.5),
        [(10, 0.2), (30, 0.1414213562), (50, 0.1)],
    ),
    # lr * 0.5 * (1 + cos(pi * step / total)); cos(pi/4) = 0.7071067812
    "cosine": (
        dict(name="cosine", learning_rate=0.1, total_steps=100),
        [(0, 0.1), (25, 0.0853553391), (50, 0.05), (100, 0.0), (150, 0.0)],
    ),
    # lr * ((1 - alpha) * cosine + alpha): ends at alpha * lr = 0.01
    "cosine_alpha": (
        dict(name="cosine", learning_rate=0.1, total_steps=100, alpha=0.1),
        [(0, 0.1), (50, 0.055), (100, 0.01), (500, 0.01)],
    ),
    # CosineDecay's own warmup over 20 steps, then cosine over the remaining 100
    "cosine_warmup": (
        dict(name="cosine", learning_rate=0.1, total_steps=120, warmup_steps=20,
             alpha=0.2),
        [(0, 0.0), (10, 0.05), (20, 0.1), (70, 0.06), (120, 0.02)],
    ),
    # t_mul=1: cycles of 10 steps; m_mul=0.5 halves each restart's peak
    "cosine_restarts": (
        dict(name="cosine_restarts", learning_rate=0.1, total_steps=100,
             first_decay_steps=10, t_mul=1.0, m_mul=0.5),
        [(0, 0.1), (5, 0.05), (10, 0.05), (15, 0.025), (20, 0.025)],
    ),
    # t_mul=2, default first_decay_steps = (100 - 0) // 4 = 25; second cycle is 25..75
    # step 24: 0.05 * (1 + cos(0.96 pi)) = 0.05 * (1 - 0.9921147013) = 0.0003942649
    "cosine_restarts_default_first": (
        dict(name="cosine_restarts", learning_rate=0.1, total_steps=100),
        [(0, 0.1), (24, 0.0003942649), (25, 0.1), (50, 0.05)],
    ),
    # LinearWarmup over 10 steps, then cycles of 20 steps starting at step 10
    "cosine_restarts_warmup": (
        dict(name="cosine_restarts", learning_rate=0.1, total_steps=100, warmup_steps=10,
             first_decay_steps=20, t_mul=1.0),
        [(0, 0.0), (5, 0.05), (10, 0.1), (20, 0.05), (30, 0.1)],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_schedule_values(case):
    kwargs, cases = CASES[case]
    check(kwargs, cases)


def test_return_types():
    assert build_schedule("constant", 0.1, 10) == 0.1
    assert isinstance(build_schedule("constant", 0.1, 10), float)
    assert isinstance(build_schedule("constant", 0.1, 10, warmup_steps=2), LinearWarmup)
    cosine = build_schedule("cosine", 0.1, 10, warmup_steps=2)
    assert isinstance(cosine, keras.optimizers.schedules.CosineDecay)  # its own warmup
    assert isinstance(build_schedule("exponential", 0.1, 10),
                      keras.optimizers.schedules.ExponentialDecay)
    restarts = build_schedule("cosine_restarts", 0.1, 90, warmup_steps=10)
    assert isinstance(restarts, LinearWarmup)
    assert restarts.schedule.first_decay_steps == 20  # (90 - 10) // 4
    assert build_schedule("cosine_restarts", 0.1, 3).first_decay_steps == 1  # at least 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="step"), r"Unknown schedule\. Expected one of 'constant', 'linear', "
                            r"'exponential', 'cosine', 'cosine_restarts'\. "
                            r"Received: name='step'"),
        (dict(learning_rate=0.0), r"Received: learning_rate=0\.0"),
        (dict(learning_rate=-1), r"Received: learning_rate=-1"),
        (dict(total_steps=0), r"Received: total_steps=0"),
        (dict(warmup_steps=-1), r"Received: warmup_steps=-1"),
        (dict(warmup_steps=10), r"Received: warmup_steps=10, total_steps=10"),
        (dict(name="cosine", alpha=1.5), r"Received: alpha=1\.5"),
        (dict(name="exponential", decay_steps=0), r"Received: decay_steps=0"),
        (dict(name="cosine_restarts", first_decay_steps=0), r"Received: first_decay_steps=0"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = dict(name="constant", learning_rate=0.1, total_steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_schedule(**args)


def test_linear_warmup_config_round_trip():
    schedule = build_schedule("exponential", 0.1, 100, warmup_steps=4, decay_rate=0.5,
                              decay_steps=10)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert isinstance(restored, LinearWarmup)
    assert isinstance(restored.schedule, keras.optimizers.schedules.ExponentialDecay)
    for step in (0, 2, 4, 14, 24):
        assert lr_at(restored, step) == pytest.approx(lr_at(schedule, step))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(name="exponential", decay_rate=0.5, decay_steps=10),
        dict(name="constant"),  # warmup wraps a plain float
        dict(name="linear"),
        dict(name="cosine_restarts", first_decay_steps=10, t_mul=1.0),
    ],
)
def test_model_with_warmup_schedule_saves_and_reloads(tmp_path, kwargs):
    schedule = build_schedule(learning_rate=0.1, total_steps=100, warmup_steps=4, **kwargs)
    assert isinstance(schedule, LinearWarmup)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss="mse")
    x, y = np.ones((6, 3), "float32"), np.zeros((6, 2), "float32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)  # 3 steps, inside the warmup

    loaded = assert_saves_and_reloads(model, x, tmp_path)
    assert int(loaded.optimizer.iterations.numpy()) == 3
    # optimizer.learning_rate is the schedule's value at the current step: 0.1 * 3 / 4
    assert float(loaded.optimizer.learning_rate.numpy()) == pytest.approx(0.075)
    reloaded = loaded.optimizer._learning_rate  # the schedule object itself
    assert isinstance(reloaded, LinearWarmup)
    assert reloaded.warmup_steps == 4
    for step in (0, 2, 4, 9, 14, 24, 60):
        assert lr_at(reloaded, step) == pytest.approx(lr_at(schedule, step), rel=1e-6)


def test_every_schedule_the_config_offers_builds():
    from tf_finetune.config import LR_SCHEDULES

    for name in LR_SCHEDULES:
        schedule = build_schedule(name, 0.1, total_steps=20, warmup_steps=2)
        assert lr_at(schedule, 2) == pytest.approx(0.1, rel=1e-6), name