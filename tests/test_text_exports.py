"""LiteRT and ONNX exports of a text model (sentiment_lstm smoke-trained on real SST-2 sentences):
they take token ids, the standalone client tokenizes like Keras, and formats a text model
cannot carry are refused. (plant_cnn's image exports are tested in test_plant_cnn_cli.py.)"""

import json
import os

import numpy as np
import pytest

from projects.sentiment_lstm.project import PROJECT
from tests.helpers import assert_one_line_error
from tests.helpers import call_cli
from tests.helpers import read_export
from tests.helpers import run_client
from tests.helpers import smoke_train


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return smoke_train(PROJECT, "sst2", tmp_path_factory, export=False)  # exported below


def test_text_exports_take_token_ids_and_the_client_tokenizes_like_keras(smoke_run, tmp_path, capsys):
    export_dir = str(tmp_path / "exports")
    result = call_cli(PROJECT, ["export", "--run-dir", smoke_run.run_dir, "--export-dir", export_dir,
                                "--format", "saved_model", "litert", "onnx", "--quantize", "none", "dynamic"],
                      capsys)
    assert result.status == 0, result.err
    folder = os.path.join(export_dir, "1")
    info = read_export(folder)
    assert info["formats"]["model.tflite"]["max_abs_diff"] <= 1e-4
    assert info["formats"]["model.onnx"]["max_abs_diff"] <= 1e-4
    assert info["validation"]["client_agreement"] == 1.0  # client.py's token ids == the vectorizer's
    assert os.path.isfile(os.path.join(folder, "vocabulary.txt"))
    texts = ["a gripping , beautifully acted film", "dull and far too long", "It's not bad at all!"]
    got = {}
    for model in ("", "model.tflite", "model_dynamic.tflite", "model.onnx"):
        result = call_cli(PROJECT, ["predict", "--model", os.path.join(folder, model), "--json", *texts], capsys)
        assert result.status == 0, result.err
        got[model] = np.array([json.loads(line)["probabilities"] for line in result.out.splitlines()])
    np.testing.assert_allclose(got["model.tflite"], got[""], atol=1e-4)
    np.testing.assert_allclose(got["model.onnx"], got[""], atol=1e-4)
    assert run_client(folder, "model.tflite", texts) == [
        ("positive" if p[1] > p[0] else "negative") for p in got[""]]


def test_formats_a_project_cannot_carry_are_refused(smoke_run, tmp_path, capsys):
    result = call_cli(PROJECT, ["export", "--run-dir", smoke_run.run_dir, "--export-dir", str(tmp_path / "e"),
                                "--quantize", "int8"], capsys)
    assert_one_line_error(result, "--quantize int8", "--format litert")
