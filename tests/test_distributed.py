"""`tf_finetune.distributed`: Keras `fit` under a real two-worker MultiWorkerMirroredStrategy.

The `workers` fixture starts two worker processes on 127.0.0.1 (TF_CONFIG, free ports)
once for this module. Each one:
1. runs plain `fit`, which fails today with keras#20585;
2. checks that a model built outside the scope is refused;
3. trains a functional and a subclassed model with `prepare_for_multi_worker`: 2 epochs
   (initial_epoch=1), with validation and a callback;
4. runs evaluate and predict on the last model, and a single-replica reference fit on the
   same global batches (default strategy, in the same process) for comparison.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.conftest import REPO, free_ports  # noqa: E402

KINDS = ("functional", "subclassed")

WORKER_SCRIPT = textwrap.dedent(
    """
    import contextlib, json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # before any other TF op

    import keras
    import numpy as np
    from tf_finetune.training.distributed import is_chief, prepare_for_multi_worker

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 1.5], "float32") > 0).astype("int32")
    # Global batches of 16: 3 training steps and 1 validation step, 8 examples per worker.
    train = tf.data.Dataset.from_tensor_slices((x[:48], y[:48])).batch(16)
    val = tf.data.Dataset.from_tensor_slices((x[48:], y[48:])).batch(16)


    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8, activation="relu")
            self.classes = keras.layers.Dense(2, activation="softmax")

        def call(self, inputs):
            return self.classes(self.hidden(inputs))


    def compiled(kind):
        if kind == "functional":
            inputs = keras.Input((4,))
            hidden = keras.layers.Dense(8, activation="relu")(inputs)
            model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
        else:
            model = Net()  # built by fit
        model.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


    class Record(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_train_begin(self, logs=None):
            self.initial = self.model.get_weights()

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(epoch)


    result = {"is_chief": is_chief(strategy)}

    # 1) Plain fit, as Keras offers it.
    with strategy.scope():
        plain = compiled("functional")
    try:
        plain.fit(train, epochs=1, shuffle=False, verbose=0)
        result["plain_fit"] = "trained"
    except Exception as e:
        result["plain_fit"] = f"{type(e).__name__}: {e}"[:300]

    # 2) A model built outside the scope is refused, even when prepared inside it.
    outside = compiled("functional")
    result["outside_scope"] = []
    for enter_scope in (False, True):
        try:
            with strategy.scope() if enter_scope else contextlib.nullcontext():
                prepare_for_multi_worker(outside, strategy)
        except ValueError as e:
            result["outside_scope"].append(str(e))

    # 3) The fix.
    for kind in ("functional", "subclassed"):
        with strategy.scope():
            model = compiled(kind)
        prepare_for_multi_worker(model, strategy)
        record = Record()
        history = model.fit(train, validation_data=val, initial_epoch=1, epochs=3,
                            callbacks=[record], shuffle=False, verbose=0)
        result[kind] = {
            "history": history.history,
            "epochs": record.epochs,
            "iterations": int(model.optimizer.iterations.numpy()),
            "weights": [w.tolist() for w in model.get_weights()],
        }
    # evaluate, predict and a one-replica reference fit on the same global batches
    # (the default strategy, outside the scope), for the last model: the subclassed one,
    # which fit built.
    evaluate = model.evaluate(val, verbose=0, return_dict=True)
    predict_error = np.abs(model.predict(val, verbose=0) - model(x[48:])).max()
    reference = compiled(kind)
    reference(x[:1])
    reference.set_weights(record.initial)
    ref_history = reference.fit(train, validation_data=val, epochs=2, shuffle=False,
                                verbose=0)
    result["last"] = {
        "kind": kind,
        "evaluate": evaluate,
        "predict_error": float(predict_error),
        "ref_history": ref_history.history,
        "ref_weights": [w.tolist() for w in reference.get_weights()],
    }

    with open(sys.argv[1], "w") as f:
        json.dump(result, f)
    """
)


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """The two workers' results, worker 0 first (runs once for this module)."""
    tmp = tmp_path_factory.mktemp("multi_worker")
    script = tmp / "worker.py"
    script.write_text(WORKER_SCRIPT)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}

    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CONFIG", "TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")])))
    procs, logs = [], []
    for index in range(2):
        task = {"type": "worker", "index": index}
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": task})
        log = open(tmp / f"worker{index}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(
            [sys.executable, str(script), str(tmp / f"worker{index}.json")],
            stdout=log, stderr=subprocess.STDOUT, env=dict(env), cwd=str(tmp),
        ))
    # Wait for both; once one fails, the other would wait for it in a collective until
    # the deadline, so it is killed then too.
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            codes = [proc.poll() for proc in procs]
            if all(code == 0 for code in codes) or any(code for code in codes):
                break
            time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()

    failures = [
        f"worker {index} exited with {proc.returncode} (-9: killed after the other failed "
        f"or after 120 s):\n{(tmp / f'worker{index}.log').read_text()[-2000:]}"
        for index, proc in enumerate(procs) if proc.returncode != 0
    ]
    assert not failures, "\n\n".join(failures)
    return [json.loads((tmp / f"worker{index}.json").read_text()) for index in range(2)]


def test_plain_fit_fails_without_the_fix(workers):
    for result in workers:
        assert result["plain_fit"].startswith(
            "ValueError: Attempt to convert a value (PerReplica"
        ), (
            "Plain fit no longer fails as in keras#20585; check whether "
            f"prepare_for_multi_worker is still needed. Received: {result['plain_fit']!r}"
        )


@pytest.mark.parametrize("kind", KINDS)
def test_fit_trains_both_workers_in_sync(workers, kind):
    first, second = (result[kind] for result in workers)
    for a, b in zip(first["weights"], second["weights"]):
        np.testing.assert_array_equal(a, b)
    assert first["history"] == second["history"]

    history = first["history"]
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history["loss"]) == 2
    assert history["loss"][1] < history["loss"][0]
    assert first["epochs"] == [1, 2]  # initial_epoch=1, epochs=3
    assert first["iterations"] == 2 * 3  # 2 epochs of 3 global batches


def test_evaluate_and_predict(workers):
    for result in workers:
        last = result["last"]
        val_loss = result[last["kind"]]["history"]["val_loss"][-1]
        assert last["evaluate"]["loss"] == pytest.approx(val_loss)
        assert last["predict_error"] < 1e-5  # gathered from both workers, in order


def test_fit_matches_one_replica_on_the_global_batch(workers):
    last = workers[0]["last"]
    result = workers[0][last["kind"]]
    for a, b in zip(result["weights"], last["ref_weights"]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for key, values in last["ref_history"].items():
        np.testing.assert_allclose(result["history"][key], values, rtol=1e-5, err_msg=key)


def test_model_outside_the_scope_is_refused(workers):
    messages = workers[0]["outside_scope"]
    assert len(messages) == 2  # prepared outside and inside the scope
    for message in messages:
        assert "strategy.scope()" in message
        assert "Received: model.distribute_strategy=None, strategy=" in message


def test_is_chief_on_the_workers(workers):
    assert [result["is_chief"] for result in workers] == [True, False]


def _strategy_in(cluster, task_type, task_id):
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
    )
    return types.SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize(
    "cluster, task_type, task_id, expected",
    [
        ({"worker": ["a:1", "b:1"]}, "worker", 0, True),
        ({"worker": ["a:1", "b:1"]}, "worker", 1, False),
        ({"chief": ["c:1"], "worker": ["a:1"]}, "chief", 0, True),
        ({"chief": ["c:1"], "worker": ["a:1"]}, "worker", 0, False),
        ({"chief": ["c:1"], "worker": ["a:1"], "evaluator": ["e:1"]}, "evaluator", 0, False),
    ],
)
def test_is_chief(cluster, task_type, task_id, expected):
    from tf_finetune.training.distributed import is_chief

    assert is_chief(_strategy_in(cluster, task_type, task_id)) is expected


def test_is_chief_without_a_cluster():
    import tensorflow as tf

    from tf_finetune.training.distributed import is_chief

    assert is_chief(tf.distribute.get_strategy()) is True
    with pytest.raises(TypeError, match="Received: strategy=None"):
        is_chief(None)


def test_prepare_changes_nothing_without_multi_worker():
    import keras
    import tensorflow as tf

    from tf_finetune.training.distributed import prepare_for_multi_worker

    for strategy in (tf.distribute.get_strategy(), tf.distribute.MirroredStrategy(["CPU:0"])):
        with strategy.scope():
            model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
            model.compile(optimizer="sgd", loss="mse")
        before = dict(vars(model))
        assert prepare_for_multi_worker(model, strategy) is model
        assert vars(model) == before

    with pytest.raises(TypeError, match="Received: strategy='mirrored'"):
        prepare_for_multi_worker(model, "mirrored")
