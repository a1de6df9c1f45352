import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.conftest import REPO  # noqa: E402
from tf_finetune.errors import UserError  # noqa: E402
from tf_finetune.training.strategy import (  # noqa: E402
    TPU_ENV_VARS,
    choose_strategy,
    describe_strategy,
    resolve_strategy_name,
)


def tf_config(num_workers, chief=False):
    cluster = {"worker": [f"host{i}:2222" for i in range(num_workers)]}
    if chief:
        cluster["chief"] = ["chief0:2222"]
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})}


@pytest.mark.parametrize(
    "name, env, num_gpus, tpu, expected",
    [
        ("auto", {}, 0, False, "default"),
        ("auto", {}, 1, False, "default"),
        ("auto", {}, 2, False, "mirrored"),
        ("auto", {}, 8, True, "tpu"),  # TPU wins over GPUs
        ("auto", tf_config(2), 4, True, "tpu"),  # and over a cluster
        ("auto", tf_config(2), 4, False, "multi_worker"),  # cluster wins over GPUs
        ("auto", tf_config(1, chief=True), 0, False, "multi_worker"),  # chief + worker = 2
        ("auto", tf_config(1), 2, False, "mirrored"),  # a one-task cluster is not multi-worker
        ("auto", {"TF_CONFIG": ""}, 0, False, "default"),
        ("auto", {"TF_CONFIG": '{"cluster": {"ps": ["a:1", "b:1"]}}'}, 0, False, "default"),
        ("default", {}, 4, True, "default"),  # explicit names are taken as is
        ("one_device", {}, 0, False, "one_device"),
        ("mirrored", {}, 0, False, "mirrored"),
        ("multi_worker", {}, 0, False, "multi_worker"),
        ("tpu", {}, 0, False, "tpu"),
    ],
)
def test_resolve_strategy_name(name, env, num_gpus, tpu, expected):
    assert resolve_strategy_name(name, env=env, num_gpus=num_gpus, tpu_configured=tpu) == expected


@pytest.mark.parametrize("name", ["mirror", "AUTO", "", None])
def test_unknown_strategy_name(name):
    with pytest.raises(UserError) as info:
        resolve_strategy_name(name, env={}, num_gpus=0, tpu_configured=False)
    message = str(info.value)
    assert f"Received: name={name!r}" in message
    assert "'auto', 'default', 'one_device', 'mirrored', 'multi_worker', 'tpu'" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["auto", "multi_worker"])
@pytest.mark.parametrize("raw", ['{"cluster": {"worker": [', "[1, 2]", '{"cluster": []}'])
def test_malformed_tf_config(name, raw):
    with pytest.raises(UserError, match="TF_CONFIG") as info:
        resolve_strategy_name(name, env={"TF_CONFIG": raw}, num_gpus=0, tpu_configured=False)
    assert "\n" not in str(info.value)


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("TF_CONFIG",) + TPU_ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def test_choose_default_strategy(clean_env, caplog):
    with caplog.at_level(logging.DEBUG, logger="tf_finetune.training.strategy"):
        strategy = choose_strategy("default")
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert describe_strategy(strategy) == "DefaultStrategy with 1 replica"
    assert "DefaultStrategy with 1 replica" in caplog.text


def test_choose_auto_on_a_cpu_machine_is_default(clean_env):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this test describes a machine without GPUs")
    assert describe_strategy(choose_strategy()) == "DefaultStrategy with 1 replica"


def test_choose_one_device(clean_env):
    strategy = choose_strategy("one_device")
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert describe_strategy(strategy) == "OneDeviceStrategy with 1 replica"


def test_choose_tpu_without_a_tpu_is_a_user_error(clean_env, monkeypatch):
    if tf.config.list_logical_devices("TPU"):
        pytest.skip("this machine has a TPU")
    # 'local' TPU (a TPU VM): fails fast and offline when there is none.
    monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v4-8")
    with pytest.raises(UserError, match="no TPU found"):
        choose_strategy("auto")


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import logging, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf

    # Must happen before TensorFlow initialises its devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )

    import sys
    import keras
    import numpy as np
    from tf_finetune.config import TrainConfig
    from tf_finetune.training.strategy import describe_strategy
    from tf_finetune.run_dir import read_history
    from tf_finetune.training.trainer import Trainer

    # The trainer's two phases (frozen backbone, then its top unfrozen), with its backups.
    config = TrainConfig(strategy="mirrored", epochs=2, fine_tune_epochs=1, unfreeze_top=1,
                         batch_size=16, learning_rate=0.05, fine_tune_learning_rate=0.01)
    trainer = Trainer(config, sys.argv[1])
    print("REPLICAS", trainer.strategy.num_replicas_in_sync)
    print("DESCRIBE", describe_strategy(trainer.strategy))

    def model_fn():
        backbone = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                     keras.layers.Dense(8, activation="relu")], name="backbone")
        backbone.trainable = False
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(backbone(inputs)))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=0).batch(16)
    val = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = trainer.build_model(model_fn)
    best = trainer.fit(model, train, val, backbone=model.get_layer("backbone"))
    print("STEPS", int(model.optimizer.iterations.numpy()))  # phase 2's optimizer: 1 epoch of 4
    print("EPOCHS", len(read_history(sys.argv[1])["loss"]))
    print("BEST_SAVED", os.path.isfile(os.path.join(sys.argv[1], "checkpoints", "best.keras")))
    print("FINITE", all(np.isfinite(w).all() for w in best.get_weights()))
    """
)


def test_mirrored_strategy_on_two_logical_cpus_trains(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for var in ("TF_CONFIG", "CUDA_VISIBLE_DEVICES") + TPU_ENV_VARS:
        env.pop(var, None)
    env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU path, even on a GPU machine
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path / "run")],
        capture_output=True, text=True, timeout=180, env=env, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "REPLICAS 2" in lines
    assert "DESCRIBE MirroredStrategy with 2 replicas" in lines
    assert "STEPS 4" in lines
    assert "EPOCHS 3" in lines
    assert "BEST_SAVED True" in lines
    assert "FINITE True" in lines
