"""LiteRT and ONNX exports of smoke-trained runs on the real data: each format verified against
Keras, the int8 gate, the standalone clients, and export folders that are never half-written."""

import json
import os
import resource
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from projects.plant_cnn.project import PROJECT as PLANT
from projects.sentiment_lstm.project import PROJECT as SENTIMENT
from tests.conftest import REPO
from tests.helpers import assert_export_versions
from tests.helpers import assert_one_line_error
from tests.helpers import call_cli
from tests.helpers import run_cli
from tests.helpers import smoke_train
from tf_finetune.serving import versions


@pytest.fixture(scope="module")
def plant_run(tmp_path_factory):
    return smoke_train(PLANT, "plantvillage", tmp_path_factory, export=False)  # exported below


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory):
    return smoke_train(SENTIMENT, "sst2", tmp_path_factory, export=False)


@pytest.fixture(scope="module")
def plant_export(plant_run, tmp_path_factory):
    """LiteRT float and int8 (int8 in and out) + ONNX of the plant run, in one version folder (the
    SavedModel beside them is the CLI tests' subject)."""
    from tf_finetune.cli import main

    export_dir = str(tmp_path_factory.mktemp("plant_formats"))
    status = main(PLANT, ["export", "--run-dir", plant_run.run_dir, "--export-dir", export_dir,
                          "--format", "litert", "onnx", "--quantize", "none", "int8",
                          "--calibration-examples", "32", "--int8-io", "--max-accuracy-drop", "100"])
    assert status == 0
    return os.path.join(export_dir, "1")


def read_export(folder):
    with open(os.path.join(folder, "export.json")) as f:
        return json.load(f)


def test_every_format_lands_in_one_version_folder_verified(plant_export):
    names = set(os.listdir(plant_export))
    assert {"model.tflite", "model_int8.tflite", "model.onnx", "labels.txt", "preprocessing.json", "client.py",
            "export.json", "README.md"} <= names and "saved_model.pb" not in names
    info = read_export(plant_export)
    formats = info["formats"]
    assert set(formats) == {"model.tflite", "model_int8.tflite", "model.onnx"}
    # Float artifacts within 1e-4 of Keras on every validation example.
    assert formats["model.tflite"]["max_abs_diff"] <= 1e-4
    assert formats["model.onnx"]["max_abs_diff"] <= 1e-4
    examples = info["validation"]["examples"]
    assert formats["model.onnx"]["verified_on"] == f"{examples} validation examples" and examples > 0
    # int8 mostly agrees with Keras (the smoke run's 35 validation images are too few for the
    # 1-point gate: one flip is 2.9 points), in a fraction of the float file.
    int8 = formats["model_int8.tflite"]
    assert int8["agreement"] >= 0.8, int8
    assert int8["int8_io"] is True
    assert int8["bytes"] < 0.4 * formats["model.tflite"]["bytes"]
    with open(os.path.join(plant_export, "README.md")) as f:
        card = f.read()
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(os.path.join(plant_export, "model_int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    for fragment in ("model_int8.tflite", "model.onnx", "onnxruntime", "ai_edge_litert", "labels.txt"):
        assert fragment in card


def test_predict_takes_raw_images_through_every_format(plant_export, plant_run, capsys):
    images = plant_run.read_json("run.json")["examples"][:4]
    outputs = {}
    for model in ("keras", "model.tflite", "model.onnx"):  # keras: the run, through the serving function
        path = plant_run.run_dir if model == "keras" else os.path.join(plant_export, model)
        result = call_cli(PLANT, ["predict", "--model", path, "--json", *images], capsys)
        assert result.status == 0, result.err
        outputs[model] = [json.loads(line) for line in result.out.splitlines()]
    labels = {model: [o["label"] for o in out] for model, out in outputs.items()}
    assert labels["model.tflite"] == labels["keras"] == labels["model.onnx"]
    for model in ("model.tflite", "model.onnx"):  # PIL's JPEG decoder (accurate IDCT) vs TensorFlow's
        diff = np.abs(np.array([o["probabilities"] for o in outputs[model]])
                      - np.array([o["probabilities"] for o in outputs["keras"]]))
        assert diff.max() < 0.05, diff.max()


CLIENT_ONLY = """
import runpy, sys
sys.argv = ["client.py", *sys.argv[1:]]
runpy.run_path(sys.argv[1 - 1 + 1 - 1] if False else "{client}", run_name="__main__")
loaded = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_finetune", "projects")]
assert not loaded, loaded
"""


def run_client(folder, model_file, inputs):
    """The export folder's own client.py in a fresh process that must import no TensorFlow."""
    code = CLIENT_ONLY.format(client=os.path.join(folder, "client.py"))
    result = subprocess.run([sys.executable, "-c", code, os.path.join(folder, model_file), *inputs],
                            cwd=str(folder), capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=""))
    assert result.returncode == 0, result.stderr[-2000:]
    return [line.split("\t")[0] for line in result.stdout.strip().splitlines()]


def test_standalone_clients_import_only_their_runtime(plant_export, plant_run, capsys):
    images = plant_run.read_json("run.json")["examples"][:3]
    result = call_cli(PLANT, ["predict", "--model", plant_run.run_dir, *images], capsys)
    expected = [line.split("\t")[0] for line in result.out.strip().splitlines()]
    assert run_client(plant_export, "model.tflite", images) == expected
    assert run_client(plant_export, "model.onnx", images) == expected


def test_text_exports_take_token_ids_and_the_client_tokenizes_like_keras(sentiment_run, tmp_path, capsys):
    export_dir = str(tmp_path / "exports")
    result = call_cli(SENTIMENT, ["export", "--run-dir", sentiment_run.run_dir, "--export-dir", export_dir,
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
        result = call_cli(SENTIMENT, ["predict", "--model", os.path.join(folder, model), "--json", *texts], capsys)
        assert result.status == 0, result.err
        got[model] = np.array([json.loads(line)["probabilities"] for line in result.out.splitlines()])
    np.testing.assert_allclose(got["model.tflite"], got[""], atol=1e-4)
    np.testing.assert_allclose(got["model.onnx"], got[""], atol=1e-4)
    assert run_client(folder, "model.tflite", texts) == [
        ("positive" if p[1] > p[0] else "negative") for p in got[""]]


def test_the_int8_gate_refuses_a_badly_calibrated_model(plant_run, tmp_path, monkeypatch, capsys):
    from tf_finetune.serving import exporter

    # Calibrated on near-black images, int8 clips every real pixel range: accuracy collapses.
    def dark(tensor_model, data, n):
        shape = tensor_model.inputs[0]["shape"][1:]
        return lambda: iter([[np.full([1, *shape], 0.5, np.float32)] for _ in range(8)])

    monkeypatch.setattr(exporter, "_calibration", dark)
    export_dir = str(tmp_path / "exports")
    result = call_cli(PLANT, ["export", "--run-dir", plant_run.run_dir, "--export-dir", export_dir,
                              "--format", "litert", "--quantize", "int8", "--max-accuracy-drop", "1"], capsys)
    assert_one_line_error(result, "--quantize int8", "points below the float model", "--max-accuracy-drop")
    assert not os.path.exists(export_dir) or os.listdir(export_dir) == []


def test_formats_a_project_cannot_carry_are_refused(sentiment_run, tmp_path, capsys):
    result = call_cli(SENTIMENT, ["export", "--run-dir", sentiment_run.run_dir, "--export-dir", str(tmp_path / "e"),
                                  "--quantize", "int8"], capsys)
    assert_one_line_error(result, "--quantize int8", "--format litert")


# --- version folders ---------------------------------------------------------------------


def test_concurrent_reservations_get_distinct_versions(tmp_path):
    got, barrier = [], threading.Barrier(8)

    def export():
        barrier.wait()
        with versions.published(str(tmp_path)) as (version, tmp, final):
            with open(os.path.join(tmp, "file"), "w") as f:
                f.write(str(version))
        got.append(version)

    threads = [threading.Thread(target=export) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 9))
    assert_export_versions(str(tmp_path), [str(v) for v in range(1, 9)])


@pytest.mark.slow  # ~40 s; test_concurrent_reservations_get_distinct_versions covers the reservations
def test_two_export_commands_at_once_write_two_whole_versions(plant_run, tmp_path):
    export_dir = str(tmp_path / "exports")
    child = dict(os.environ, TF_FINETUNE_OFFLINE="1")
    procs = [subprocess.Popen([sys.executable, "-m", "projects.plant_cnn", "export", "--run-dir", plant_run.run_dir,
                               "--export-dir", export_dir], cwd=REPO, env=child,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    assert_export_versions(export_dir, ["1", "2"])
    for v in ("1", "2"):
        assert os.path.isfile(os.path.join(export_dir, v, "saved_model.pb"))


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


@pytest.mark.slow  # ~30 s; the atomic publishing it relies on is tested by the reservation tests
def test_a_disk_that_fills_up_leaves_no_version_behind(plant_run, tmp_path):
    export_dir = str(tmp_path / "exports")
    os.makedirs(export_dir)
    result = subprocess.run([sys.executable, "-m", "projects.plant_cnn", "export", "--run-dir", plant_run.run_dir,
                             "--export-dir", export_dir], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_FINETUNE_OFFLINE="1"), preexec_fn=_limit_file_size)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "disk filled up" in errors[0] and "nothing was kept" in errors[0], result.stderr[-2000:]
    assert os.listdir(export_dir) == []
