"""End to end on the real PlantVillage images: train --smoke, export, serve raw JPEG bytes; LiteRT
and ONNX exports verified against Keras, the int8 gate, the standalone clients, and export
folders that are never half-written."""

import json
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

from projects.plant_cnn.project import PROJECT
from tests.conftest import REPO
from tests.conftest import require_data
from tests.conftest import write_image
from tests.helpers import assert_export_command_works_in_a_fresh_process
from tests.helpers import assert_export_versions
from tests.helpers import assert_one_line_error
from tests.helpers import assert_predict_agrees
from tests.helpers import assert_run_dir_complete
from tests.helpers import assert_savedmodel_serves_like_keras
from tests.helpers import call_cli
from tests.helpers import read_export
from tests.helpers import run_cli
from tests.helpers import run_client
from tests.helpers import smoke_train
from tests.test_pruning import plan_toml
from tf_finetune.cli import main
from tf_finetune.run_dir import read_history

SMOKE_ACCURACY = 0.6  # pretrained features separate these leaves after a seconds-long run (chance: 1/7)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return smoke_train(PROJECT, "plantvillage", tmp_path_factory)


def example_files(run):
    """The validation images the run recorded as examples."""
    return run.read_json("run.json")["examples"]


def test_train_writes_a_complete_run_dir(smoke_run):
    # Image runs also show the augmentation and the mistakes.
    report = assert_run_dir_complete(smoke_run, extra=["confusion_matrix.png", "augmentation.png"])
    assert len(report["per_class"]) == 7
    assert report["accuracy"] >= SMOKE_ACCURACY, report["accuracy"]
    assert os.path.isfile(smoke_run.path("misclassified.png")) == (report["accuracy"] < 1.0)


def test_savedmodel_serves_raw_jpeg_bytes_like_keras(smoke_run, tmp_path):
    raw = []
    for path in example_files(smoke_run):
        with open(path, "rb") as f:
            raw.append(f.read())
    assert_savedmodel_serves_like_keras(smoke_run, raw, tmp_path)
    with open(os.path.join(smoke_run.export_dir, "1", "assets", "labels.txt")) as f:
        labels = f.read().split()
    assert labels == smoke_run.read_json("run.json")["class_names"] and len(labels) == 7


def test_the_export_command_loads_the_run_in_a_fresh_process(smoke_run, tmp_path):
    assert_export_command_works_in_a_fresh_process(smoke_run, tmp_path)


def test_predict_from_run_and_savedmodel_agree(smoke_run, capsys):
    assert_predict_agrees(smoke_run, example_files(smoke_run)[:3], capsys, count=3)


def test_evaluate_prints_per_class_table_and_export_adds_a_version(smoke_run, capsys):
    assert main(PROJECT, ["evaluate", "--run-dir", smoke_run.run_dir]) == 0
    out = capsys.readouterr().out
    assert "Potato___Late_blight" in out and "macro" in out
    assert main(PROJECT, ["export", "--run-dir", smoke_run.run_dir, "--export-dir", smoke_run.export_dir]) == 0
    assert sorted(os.listdir(smoke_run.export_dir)) == ["1", "2"]


def test_corrupt_jpeg_among_good_ones_is_skipped_and_counted(tmp_path, capsys):
    root = tmp_path / "data"
    for cls, color in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        for i in range(6):
            write_image(str(root / cls / f"{i}.jpg"), size=(40, 40), color=color)
    (root / "red" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    run_dir = str(tmp_path / "run")
    status = main(PROJECT, ["train", "--smoke", "--data-dir", str(root), "--output-dir", run_dir,
                            "--backbone", "seed_cnn", "--image-size", "32", "--fine-tune-epochs", "0"])
    assert status == 0
    with open(os.path.join(run_dir, "run.json")) as f:
        assert json.load(f)["data"]["skipped"] == {"unreadable": 1}


@pytest.mark.parametrize("backbone, reason", [
    ("seed_cnn", "this model has no pretrained backbone to unfreeze"),
    # ~40 s for a second reason line: run by hand (tests/test_trainer.py covers the plan).
    pytest.param("mobilenet_v2", "the top 20 layers of 'backbone' are trainable already", marks=pytest.mark.slow),
])
def test_weights_none_trains_in_one_phase_and_logs_why_once(image_folder_factory, tmp_path, backbone, reason):
    run_dir = str(tmp_path / "run")
    result = run_cli("plant_cnn", "train", "--smoke", "--data-dir", image_folder_factory(),
                     "--output-dir", run_dir, "--backbone", backbone, "--weights", "none",
                     "--image-size", "32", "--epochs", "1")  # --smoke: --fine-tune-epochs 1
    assert result.status == 0, result.err[-3000:]
    lines = [line for line in result.err.splitlines() if "Training in one phase" in line]
    assert len(lines) == 1 and reason in lines[0], result.err[-3000:]
    assert len(read_history(run_dir)["loss"]) == 1  # the head epoch only
    with open(os.path.join(run_dir, "state.json")) as f:
        assert [stage["name"] for stage in json.load(f)["stages"]] == ["head"]


def test_mixup_and_cutmix_mix_the_training_batches(image_folder_factory, tmp_path, capsys, caplog):
    run_dir = str(tmp_path / "run")
    with caplog.at_level("INFO"):
        result = call_cli(PROJECT, ["train", "--smoke", "--data-dir", image_folder_factory(), "--output-dir", run_dir,
                                    "--backbone", "seed_cnn", "--weights", "none", "--image-size", "32",
                                    "--epochs", "2", "--mixup", "0.4", "--cutmix", "1.0"], capsys)
    assert result.status == 0, result.err[-3000:]
    assert "Training batches mixed: MixUp (keras.layers.MixUp, Beta(0.4, 0.4)) or CutMix (keras.layers.CutMix, " \
           "Beta(1, 1)), one of the two per batch." in caplog.text
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    assert (config["mixup"], config["cutmix"]) == (0.4, 1.0)
    assert len(read_history(run_dir)["loss"]) == 2


def _bad_case(tmp_path, case):
    """Builds the bad input for `case`; returns (args, expected text in the error line)."""
    good = tmp_path / "good"
    for cls in ("a", "b"):
        for i in range(3):
            write_image(str(good / cls / f"{i}.jpg"), size=(32, 32), seed=i)
    common = ["--smoke", "--output-dir", str(tmp_path / "run")]
    if case == "empty folder":
        (tmp_path / "empty").mkdir()
        return ["train", "--data-dir", str(tmp_path / "empty"), *common], "no class subfolders"
    if case == "one class":
        write_image(str(tmp_path / "one" / "only" / "1.jpg"))
        return ["train", "--data-dir", str(tmp_path / "one"), *common], "one class only"
    if case == "wrong weights path":
        return ["train", "--data-dir", str(good), "--weights", str(tmp_path / "nope.h5"), *common], \
            "--weights"
    if case == "export dir is a file":
        (tmp_path / "file").write_text("x")
        return ["train", "--data-dir", str(good), "--export-dir", str(tmp_path / "file"), *common], \
            "--export-dir"
    if case == "not a run dir":
        return ["export", "--run-dir", str(good)], "not a training run"
    if case == "predict with no model":
        return ["predict", "--model", str(tmp_path / "nothing"), str(good / "a" / "0.jpg")], \
            "is not a run directory, a SavedModel"
    if case == "mixup out of range":
        return ["train", "--data-dir", str(good), "--mixup", "1.5", *common], "--mixup must be in [0, 1]"
    if case == "unknown setting in config":
        (tmp_path / "c.json").write_text('{"learning_rat": 0.1}')
        return ["train", "--data-dir", str(good), "--config", str(tmp_path / "c.json"), *common], \
            "unknown setting(s) learning_rat"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["empty folder", "one class", "wrong weights path",
                                  "export dir is a file", "not a run dir", "predict with no model",
                                  "mixup out of range", "unknown setting in config"])
def test_bad_input_is_one_line_and_nonzero_exit(tmp_path, case, capsys, monkeypatch):
    """One case in a new process, as a user runs it (TensorFlow's start-up lines hidden); the
    others in this one, which checks the same line without five seconds of start-up each."""
    args, expected = _bad_case(tmp_path, case)
    if case == "empty folder":
        result = run_cli("plant_cnn", *args)
    else:
        monkeypatch.setenv("TF_FINETUNE_OFFLINE", "1")
        result = call_cli(PROJECT, args, capsys)
    assert_one_line_error(result, expected, run_dir=tmp_path / "run")


def test_a_smoke_run_with_a_pruning_stage_exports_its_sparsity_beside_int8(tmp_path, capsys, caplog):
    """The seed CNN on the real images: a fit stage, then a pruning stage whose end step, past
    the smoke run's steps, is clipped so that it still reaches 80%; the SavedModel and LiteRT
    float and int8 files in one version, export.json with the sparsity and gzip sizes."""
    data_dir = require_data("plantvillage")
    run, exports = str(tmp_path / "run"), str(tmp_path / "exports")
    with caplog.at_level("INFO"):
        status = main(PROJECT, ["train", "--config", plan_toml(tmp_path, epochs=2), "--data-dir", data_dir, "--smoke",
                                "--backbone", "seed_cnn", "--image-size", "32", "--max-examples-per-class", "8",
                                "--output-dir", run, "--export-dir", exports, "--format", "saved_model", "litert",
                                "--quantize", "none", "int8", "--calibration-examples", "16",
                                "--max-accuracy-drop", "100"])
    assert status == 0
    assert "its pruning schedule (steps 0 to 500) is clipped to steps 0 to" in caplog.text
    with open(os.path.join(exports, "1", "export.json")) as f:
        info = json.load(f)
    pruned = info["pruning"]
    assert pruned["target_sparsity"] == 0.8 and pruned["sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert set(pruned["layers"]) == {"conv2d_1", "conv2d_2", "dense", "predictions"}  # conv2d: 864 weights
    assert all(entry["sparsity"] == pytest.approx(0.8, abs=1e-3) for entry in pruned["layers"].values())
    formats = info["formats"]
    assert set(formats) == {"saved_model", "model.tflite", "model_int8.tflite"}
    for entry in formats.values():  # 80% zeros: gzip takes most of every file off
        assert entry["gzip_bytes"] < 0.5 * entry["bytes"], entry
    assert formats["model.tflite"]["max_abs_diff"] <= 1e-4
    assert read_history(run)["sparsity"][-1] == pytest.approx(0.8, abs=1e-3)


# --- LiteRT and ONNX exports of the smoke run ---------------------------------------------


@pytest.fixture(scope="module")
def plant_export(smoke_run, tmp_path_factory):
    """LiteRT float and int8 (int8 in and out) + ONNX of the plant run, in one version folder (the
    SavedModel beside them is what the tests above check)."""
    export_dir = str(tmp_path_factory.mktemp("plant_formats"))
    status = main(PROJECT, ["export", "--run-dir", smoke_run.run_dir, "--export-dir", export_dir,
                            "--format", "litert", "onnx", "--quantize", "none", "int8",
                            "--calibration-examples", "32", "--int8-io", "--max-accuracy-drop", "100"])
    assert status == 0
    return os.path.join(export_dir, "1")


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


def test_predict_takes_raw_images_through_every_format(plant_export, smoke_run, capsys):
    images = smoke_run.read_json("run.json")["examples"][:4]
    outputs = {}
    for model in ("keras", "model.tflite", "model.onnx"):  # keras: the run, through the serving function
        path = smoke_run.run_dir if model == "keras" else os.path.join(plant_export, model)
        result = call_cli(PROJECT, ["predict", "--model", path, "--json", *images], capsys)
        assert result.status == 0, result.err
        outputs[model] = [json.loads(line) for line in result.out.splitlines()]
    labels = {model: [o["label"] for o in out] for model, out in outputs.items()}
    assert labels["model.tflite"] == labels["keras"] == labels["model.onnx"]
    for model in ("model.tflite", "model.onnx"):  # PIL's JPEG decoder (accurate IDCT) vs TensorFlow's
        diff = np.abs(np.array([o["probabilities"] for o in outputs[model]])
                      - np.array([o["probabilities"] for o in outputs["keras"]]))
        assert diff.max() < 0.05, diff.max()


def test_standalone_clients_import_only_their_runtime(plant_export, smoke_run, capsys):
    images = smoke_run.read_json("run.json")["examples"][:3]
    result = call_cli(PROJECT, ["predict", "--model", smoke_run.run_dir, *images], capsys)
    expected = [line.split("\t")[0] for line in result.out.strip().splitlines()]
    assert run_client(plant_export, "model.tflite", images) == expected
    assert run_client(plant_export, "model.onnx", images) == expected


def test_the_int8_gate_refuses_a_badly_calibrated_model(smoke_run, tmp_path, monkeypatch, capsys):
    from tf_finetune.serving import exporter

    # Calibrated on near-black images, int8 clips every real pixel range: accuracy collapses.
    def dark(tensor_model, data, n):
        shape = tensor_model.inputs[0]["shape"][1:]
        return lambda: iter([[np.full([1, *shape], 0.5, np.float32)] for _ in range(8)])

    monkeypatch.setattr(exporter, "_calibration", dark)
    export_dir = str(tmp_path / "exports")
    result = call_cli(PROJECT, ["export", "--run-dir", smoke_run.run_dir, "--export-dir", export_dir,
                                "--format", "litert", "--quantize", "int8", "--max-accuracy-drop", "1"], capsys)
    assert_one_line_error(result, "--quantize int8", "points below the float model", "--max-accuracy-drop")
    assert not os.path.exists(export_dir) or os.listdir(export_dir) == []


@pytest.mark.slow  # ~40 s; test_concurrent_reservations_get_distinct_versions covers the reservations
def test_two_export_commands_at_once_write_two_whole_versions(smoke_run, tmp_path):
    export_dir = str(tmp_path / "exports")
    child = dict(os.environ, TF_FINETUNE_OFFLINE="1")
    procs = [subprocess.Popen([sys.executable, "-m", "projects.plant_cnn", "export", "--run-dir", smoke_run.run_dir,
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
def test_a_disk_that_fills_up_leaves_no_version_behind(smoke_run, tmp_path):
    export_dir = str(tmp_path / "exports")
    os.makedirs(export_dir)
    result = subprocess.run([sys.executable, "-m", "projects.plant_cnn", "export", "--run-dir", smoke_run.run_dir,
                             "--export-dir", export_dir], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_FINETUNE_OFFLINE="1"), preexec_fn=_limit_file_size)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "disk filled up" in errors[0] and "nothing was kept" in errors[0], result.stderr[-2000:]
    assert os.listdir(export_dir) == []
