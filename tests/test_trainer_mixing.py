"""The Trainer with MixUp/CutMix (`fit(mixing=...)`): what each epoch trains on, exact resume."""

import numpy as np
import pytest

from tf_finetune.augmentation import BatchMixing
from tf_finetune.errors import UserError
from tf_finetune.run_dir import read_history
from tf_finetune.training import trainer as trainer_lib
from tests.test_trainer import Crash
from tests.test_trainer import batches
from tests.test_trainer import crash_after_epoch
from tests.test_trainer import data
from tests.test_trainer import model_fn
from tests.test_trainer import parts
from tests.test_trainer import plan_config

PLAN = [{"name": "head", "epochs": 2, "trainable": "head", "learning_rate": 0.01},
        {"name": "top", "epochs": 2, "trainable": "top:1", "learning_rate": 0.01, "batch_size": 32}]
MIXING = BatchMixing(mixup=0.4, cutmix=1.0)


def fit(tmp_path, name, mixing=MIXING, **settings):
    trainer = trainer_lib.Trainer(plan_config(PLAN, **settings), str(tmp_path / name))
    model = trainer.build_model(model_fn)
    return trainer.fit(model, batches(), data(seed=1), parts=parts(model), mixing=mixing)


def test_training_batches_are_mixed_with_one_hot_labels_and_validation_is_not(tmp_path, monkeypatch):
    seen = []
    fit_epoch = trainer_lib.Trainer._fit_epoch

    def recording(self, model, train, val, *args, **kwargs):
        seen.append(([y.numpy() for _, y in train], [y.numpy() for _, y in val], model.loss))
        return fit_epoch(self, model, train, val, *args, **kwargs)

    monkeypatch.setattr(trainer_lib.Trainer, "_fit_epoch", recording)
    fit(tmp_path, "mixed")
    assert len(seen) == 4
    for epoch, (train, val, loss) in enumerate(seen):
        assert type(loss).__name__ == "CategoricalCrossentropy"
        assert [len(y) for y in train] == ([16] * 4 if epoch < 2 else [32] * 2)  # the stages' batch sizes
        train = np.concatenate(train)
        np.testing.assert_allclose(train.sum(-1), 1.0, rtol=1e-5)
        assert (train.max(-1) < 0.999).mean() > 0.5  # mixed rows
        val = np.concatenate(val)
        assert set(np.unique(val)) == {0.0, 1.0} and (val.sum(-1) == 1).all()  # one-hot, never mixed
    # Each epoch mixes its own way (the mix follows the epoch's seed).
    assert not np.allclose(np.concatenate(seen[0][0]), np.concatenate(seen[1][0]))


def test_without_mixing_the_labels_stay_class_ids(tmp_path, monkeypatch):
    seen = []
    fit_epoch = trainer_lib.Trainer._fit_epoch

    def recording(self, model, train, val, *args, **kwargs):
        seen.append(next(iter(train))[1].numpy().ndim)
        return fit_epoch(self, model, train, val, *args, **kwargs)

    monkeypatch.setattr(trainer_lib.Trainer, "_fit_epoch", recording)
    fit(tmp_path, "plain", mixing=BatchMixing())  # off: nothing changes
    assert seen == [1, 1, 1, 1]


def test_a_mixed_run_killed_and_rerun_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    expected = fit(tmp_path, "whole")
    with monkeypatch.context() as patch:
        crash_after_epoch(patch, 3)  # in the second stage, after its first epoch
        with pytest.raises(Crash):
            fit(tmp_path, "killed")
    resumed = fit(tmp_path, "killed")
    for w0, w1 in zip(expected.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(w0, w1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(read_history(str(tmp_path / "killed"))["loss"],
                               read_history(str(tmp_path / "whole"))["loss"], rtol=1e-5)


def test_mixing_needs_epoch_batches_and_the_classification_loss(tmp_path):
    trainer = trainer_lib.Trainer(plan_config(PLAN), str(tmp_path / "run"))
    model = trainer.build_model(model_fn)
    with pytest.raises(UserError, match="function of \\(seed, batch_size\\)"):
        trainer.fit(model, data(), data(seed=1), parts=parts(model), mixing=MIXING)
    with pytest.raises(UserError, match="its own loss"):
        trainer.fit(model, batches(), data(seed=1), parts=parts(model), mixing=MIXING, loss="mse")
