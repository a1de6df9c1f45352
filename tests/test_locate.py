
import pytest

from tf_finetune.data import locate
from tf_finetune.errors import UserError


def test_explicit_dir_wins(tmp_path, monkeypatch):
    (tmp_path / "env" / "plantvillage").mkdir(parents=True)
    (tmp_path / "mine").mkdir()
    monkeypatch.setenv("TF_FINETUNE_DATA", str(tmp_path / "env"))
    assert locate.resolve_data(str(tmp_path / "mine"), "plantvillage") == str(tmp_path / "mine")


def test_env_dataset_folder(tmp_path, monkeypatch):
    (tmp_path / "plantvillage").mkdir()
    monkeypatch.setenv("TF_FINETUNE_DATA", str(tmp_path))
    assert locate.resolve_data(None, "plantvillage") == str(tmp_path / "plantvillage")


def test_missing_explicit_dir_is_an_error(tmp_path):
    with pytest.raises(UserError, match="--data-dir .* does not exist"):
        locate.resolve_data(str(tmp_path / "nope"), "plantvillage")


def test_offline_without_data_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_FINETUNE_DATA", str(tmp_path))  # has no plantvillage/
    monkeypatch.setenv("TF_FINETUNE_OFFLINE", "1")
    monkeypatch.setattr(locate, "tfds_prepared", lambda name: False)
    with pytest.raises(UserError) as info:
        locate.resolve_data(None, "plantvillage", tfds_name="plant_village")
    message = str(info.value)
    assert "--data-dir" in message and "TF_FINETUNE_DATA" in message and "plant_village" in message
    assert "\n" not in message


def test_online_falls_back_to_tfds(monkeypatch):
    monkeypatch.delenv("TF_FINETUNE_DATA", raising=False)
    monkeypatch.setattr(locate, "is_online", lambda: True)
    monkeypatch.setattr(locate, "tfds_prepared", lambda name: False)
    assert locate.resolve_data(None, "flowers", tfds_name="tf_flowers") == locate.TfdsSource("tf_flowers")


def test_weights_file_from_env(tmp_path, monkeypatch):
    folder = tmp_path / "weights" / "keras_applications"
    folder.mkdir(parents=True)
    (folder / "w.h5").write_bytes(b"x")
    monkeypatch.setenv("TF_FINETUNE_DATA", str(tmp_path))
    assert locate.resolve_weights_file("w.h5") == str(folder / "w.h5")
    assert locate.resolve_weights_file("other.h5") is None
