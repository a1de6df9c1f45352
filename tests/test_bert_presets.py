"""bert_classifier presets: the forms --preset accepts, and one clear line for the rest."""

import json
import os

import pytest

from projects.bert_classifier import presets
from tf_finetune.errors import UserError


def hf_folder(path, model_type="bert", files=("model.safetensors", "vocab.txt")):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"model_type": model_type}, f)
    for name in files:
        open(os.path.join(path, name), "w").close()
    return str(path)


@pytest.mark.parametrize("handle, name", [
    ("bert_tiny_en_uncased", "bert_tiny_en_uncased"),
    ("kaggle://keras/bert/keras/bert_tiny_en_uncased/2", "bert_tiny_en_uncased"),
    ("hf://sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"),
])
def test_handle_names(handle, name):
    assert presets.handle_name(handle) == name


def test_a_local_hugging_face_folder_is_taken_as_is(tmp_path):
    path = hf_folder(tmp_path / "bert")
    assert presets.resolve_preset(path) == path


def test_a_handle_is_found_under_tf_finetune_data_weights(tmp_path, monkeypatch):
    hf_folder(tmp_path / "weights" / "all-MiniLM-L6-v2")
    monkeypatch.setenv("TF_FINETUNE_DATA", str(tmp_path))
    monkeypatch.setenv("TF_FINETUNE_OFFLINE", "1")
    assert presets.resolve_preset("hf://sentence-transformers/all-MiniLM-L6-v2") == str(
        tmp_path / "weights" / "all-MiniLM-L6-v2")


def test_an_unknown_handle_offline_names_every_way_out(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_FINETUNE_DATA", str(tmp_path))
    monkeypatch.setenv("TF_FINETUNE_OFFLINE", "1")
    with pytest.raises(UserError) as e:
        presets.resolve_preset("bert_tiny_en_uncased")
    message = str(e.value)
    assert "offline" in message and "weights/bert_tiny_en_uncased/" in message
    assert "--preset DIR" in message and "Hugging Face" in message and "\n" not in message


@pytest.mark.parametrize("make, match", [
    (lambda p: str(p / "missing"), "is not a folder"),
    (lambda p: (os.makedirs(p / "empty"), str(p / "empty"))[1], "has no config.json"),
    (lambda p: hf_folder(p / "gpt", model_type="gpt2"), "holds a 'gpt2' model, not BERT"),
    (lambda p: hf_folder(p / "noweights", files=("vocab.txt",)), "lacks model.safetensors"),
    (lambda p: (hf_folder(p / "badjson"), open(p / "badjson" / "config.json", "w").write("{"),
                str(p / "badjson"))[2], "is not valid JSON"),
])
def test_malformed_local_presets_fail_with_one_line_naming_the_forms(tmp_path, make, match):
    with pytest.raises(UserError, match=match) as e:
        presets.resolve_preset(make(tmp_path))
    assert "keras-hub preset folder" in str(e.value) and "\n" not in str(e.value)


def test_corrupt_weights_fail_to_load_with_one_line(tmp_path):
    path = hf_folder(tmp_path / "corrupt")
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"model_type": "bert", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "intermediate_size": 8, "max_position_embeddings": 16,
                   "type_vocab_size": 2}, f)
    with open(os.path.join(path, "model.safetensors"), "wb") as f:
        f.write(b"not a safetensors file")
    with pytest.raises(UserError, match="could not be loaded") as e:
        presets.load(path)
    assert "\n" not in str(e.value)


def test_the_offline_minilm_preset_loads_from_its_hugging_face_folder(minilm):
    backbone, tokenizer = presets.load(presets.resolve_preset(minilm))
    assert (backbone.num_layers, backbone.hidden_dim) == (6, 384)
    assert tokenizer.vocabulary_size() == 30522 and tokenizer.cls_token_id == 101
