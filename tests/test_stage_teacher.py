"""A stage that learns from the model as the stage began (`distill_alpha`): the loss against a
hand computation, the teacher frozen at the stage's start, exact resume, bad input (the
fields' ranges are in test_pruning.py)."""

import os

import keras
import numpy as np
import pytest

from tests.test_pruning import fit_plan
from tests.test_pruning import small_model
from tests.test_trainer import Crash
from tests.test_trainer import batches
from tests.test_trainer import crash_after_epoch
from tests.test_trainer import data
from tests.test_trainer import plan_config
from tf_finetune.errors import UserError
from tf_finetune.run_dir import read_history
from tf_finetune.training import backup
from tf_finetune.training import stage_teacher
from tf_finetune.training import trainer as trainer_lib


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_loss_is_the_labels_loss_and_the_softened_kl_mixed_by_alpha(smoothing):
    model = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    teacher = np.array([[0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
    labels = np.array([0, 2])
    alpha, t = 0.3, 2.0
    if smoothing:
        targets = np.eye(3)[labels] * (1 - smoothing) + smoothing / 3
        base, y_true = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing), np.eye(3)[labels]
    else:
        targets = np.eye(3)[labels]
        base, y_true = keras.losses.SparseCategoricalCrossentropy(), labels
    ce = -(targets * np.log(model)).sum(axis=1)
    q, p = softmax(np.log(teacher) / t), softmax(np.log(model) / t)
    kl = (q * np.log(q / p)).sum(axis=1)
    expected = np.mean((1 - alpha) * ce + alpha * t * t * kl)

    loss = stage_teacher.TeacherLoss(base, alpha, t)
    got = float(loss(y_true, np.concatenate([model, teacher], axis=1).astype("float32")))
    assert got == pytest.approx(expected, rel=1e-5)
    # With the teacher equal to the model only the labels' part is left.
    same = np.concatenate([model, model], axis=1).astype("float32")
    assert float(loss(y_true, same)) == pytest.approx((1 - alpha) * np.mean(ce), rel=1e-5)


def test_the_accuracy_reads_the_models_half_only():
    metric = stage_teacher.student_accuracy(one_hot=False)
    model = np.array([[0.9, 0.1], [0.2, 0.8]], "float32")
    teacher = np.array([[0.1, 0.9], [0.9, 0.1]], "float32")  # wrong on both
    metric.update_state(np.array([0, 1]), np.concatenate([model, teacher], axis=1))
    assert float(metric.result()) == 1.0 and metric.name == "accuracy"


def test_the_teacher_of_a_text_model_reads_text_and_starts_as_the_model():
    """The copy shares the vectorizer (its lookup table is no variable, so a rebuilt one would be
    empty) and rebuilds every layer with weights: equal outputs at first, then the teacher stays
    put while the model trains."""
    vectorizer = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4)
    vectorizer.adapt(["a good film", "a bad film", "good acting bad plot"])
    inputs = keras.Input((), dtype="string")
    encoder = keras.Sequential([keras.layers.Embedding(20, 4), keras.layers.GlobalAveragePooling1D()])
    outputs = keras.layers.Dense(2, activation="softmax")(encoder(vectorizer(inputs)))
    model = keras.Model(inputs, outputs)
    taught = stage_teacher.with_teacher(model)
    taught.teacher.set_weights(model.get_weights())
    texts = np.array(["a good film", "bad plot"])
    both = np.asarray(taught(texts))
    np.testing.assert_array_equal(both[:, :2], both[:, 2:])
    assert taught.teacher.layers[1] is vectorizer and taught.teacher.layers[2] is not encoder
    model.set_weights([w + 1.0 for w in model.get_weights()])
    after = np.asarray(taught(texts))
    np.testing.assert_array_equal(after[:, 2:], both[:, 2:])
    assert np.abs(after[:, :2] - both[:, :2]).max() > 1e-4


PLAN = [{"name": "dense", "epochs": 1, "trainable": "all", "learning_rate": 0.01},
        {"name": "taught", "epochs": 2, "learning_rate": 0.01, "distill_alpha": 0.7, "distill_temperature": 3.0}]


@pytest.fixture(scope="module")
def taught_run(tmp_path_factory):
    """PLAN, uninterrupted: (run dir, returned model)."""
    run_dir = tmp_path_factory.mktemp("taught_run")
    return run_dir, fit_plan(run_dir, PLAN)


def test_a_taught_stage_trains_the_model_itself_and_logs_its_accuracy(taught_run, tmp_path):
    run_dir, model = taught_run
    assert model.output_shape == (None, 3)  # the model, not the model beside its teacher
    history = read_history(str(run_dir))
    assert history["stage"] == ["dense", "taught", "taught"]
    assert all(0.0 <= value <= 1.0 for value in history["val_accuracy"])
    # Not the same training as without a teacher.
    plain = fit_plan(tmp_path, [PLAN[0], {**PLAN[1], "distill_alpha": 0.0}])
    assert any(not np.array_equal(a, b) for a, b in zip(model.get_weights(), plain.get_weights()))


def test_the_teacher_is_the_model_as_the_stage_began_and_a_resumed_run_ends_like_an_uninterrupted_one(
        taught_run, tmp_path, monkeypatch):
    whole_dir, expected = taught_run
    first_stage = fit_plan(tmp_path / "dense_only", PLAN[:1])
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        crash_after_epoch(patch, 2)  # one epoch into the taught stage
        with pytest.raises(Crash):
            fit_plan(run_dir, PLAN)
    arrays, _ = backup.read(_find_teacher(run_dir))
    for a, b in zip(arrays, first_stage.get_weights()):
        np.testing.assert_array_equal(a, b)  # the weights the first stage ended with, not later ones
    resumed = fit_plan(run_dir, PLAN)
    for w0, w1 in zip(expected.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(w0, w1, rtol=1e-5, atol=1e-6)
    assert read_history(str(run_dir))["val_loss"] == pytest.approx(read_history(str(whole_dir))["val_loss"],
                                                                   rel=1e-5)


def _find_teacher(run_dir):
    found = [os.path.join(root, name) for root, _, names in os.walk(run_dir) for name in names
             if name == "teacher_stage2.npz"]
    assert len(found) == 1, found
    return found[0]


def test_a_resumed_stage_whose_teacher_is_gone_is_one_line(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        crash_after_epoch(patch, 2)
        with pytest.raises(Crash):
            fit_plan(tmp_path, PLAN)
    os.remove(_find_teacher(tmp_path))
    with pytest.raises(UserError) as info:
        fit_plan(tmp_path, PLAN)
    message = str(info.value)
    assert "teacher_stage2.npz: the teacher of stage 2 ('taught') cannot be read back" in message
    assert "pass a new --output-dir" in message and "\n" not in message


def test_a_taught_stage_with_a_commands_own_loss_is_one_line_before_anything_trains(tmp_path):
    trainer = trainer_lib.Trainer(plan_config(PLAN), str(tmp_path / "run"))
    with pytest.raises(UserError) as info:
        trainer.fit(trainer.build_model(small_model), batches(), data(seed=1),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert str(info.value) == ("stage 2 ('taught'), field distill_alpha: this command trains with its own loss, "
                               "which a stage's teacher cannot be mixed into: leave distill_alpha out. "
                               "Received: distill_alpha=0.7")
    assert not os.path.exists(tmp_path / "run" / "history.csv")
