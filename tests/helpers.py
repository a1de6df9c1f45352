"""Shared test mechanics, in the spirit of keras-hub's `TestCase`: a test states what is specific
to it and calls one of these for the rest.

- `assert_saves_and_reloads`: a Keras model through a `.keras` file and back, computing the same.
- The CLI contract every project meets (`tests/test_<project>_cli.py`):
  `smoke_train` (the module's `train --smoke` run, with an export), `assert_run_dir_complete`,
  `assert_savedmodel_serves_like_keras` (in a fresh process that imports only TensorFlow),
  `assert_predict_agrees` (from the run directory and from the export), and, for bad input,
  `run_cli` / `call_cli` with `assert_one_line_error`.

Nothing here imports TensorFlow at import time.
"""

import base64
import dataclasses
import json
import os
import re
import subprocess
import sys

from tests.conftest import REPO
from tests.conftest import require_data

# --- saving ---------------------------------------------------------------------------


def _outputs(model, call, inputs):
    """`call` of `model` on `inputs` as a flat list of numpy arrays."""
    import keras
    import numpy as np

    out = getattr(model, call)(inputs) if isinstance(call, str) else call(model, inputs)
    return [np.asarray(x) for x in keras.tree.flatten(out)]


def assert_same_outputs(got, want, atol, rtol=0.0):
    """Flat lists of arrays: numbers within `atol`/`rtol`, strings and bytes exactly."""
    import numpy as np

    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w.dtype.kind in "OSU":
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, atol=atol, rtol=rtol)


def _trainable_paths(model):
    """The trainable weights' paths, without the model's own name (which a freshly built
    Sequential puts in front and a reloaded one does not)."""
    return [w.path.removeprefix(f"{model.name}/") for w in model.trainable_weights]


def assert_saves_and_reloads(model, inputs, tmp_path, *, call="predict_on_batch", atol=1e-6, rtol=0.0,
                             same_trainable_weights=False, same_config_of=()):
    """Saves `model` to `tmp_path/model.keras`, loads it back and asserts it computes the same.

    Args:
        model: a `keras.Model` (wrap a layer under test in one).
        inputs: what `call` is given, on the original and on the reloaded model.
        call: a method name (e.g. "predict_on_batch", a translator's "translate") or a
            function `(model, inputs) -> outputs`. Numbers are compared within `atol` and
            `rtol`, strings exactly.
        same_trainable_weights: also assert the trainable weights' paths are unchanged (a
            frozen part stays frozen after loading).
        same_config_of: layer classes: each top-level layer of these classes comes back with
            its name, class and `get_config()`.

    Returns:
        The reloaded model, for the test's own checks.
    """
    import keras

    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded) is type(model)
    assert_same_outputs(_outputs(reloaded, call, inputs), _outputs(model, call, inputs), atol, rtol)
    if same_trainable_weights:
        assert _trainable_paths(reloaded) == _trainable_paths(model)
    if same_config_of:
        layers = [layer for layer in model.layers if isinstance(layer, same_config_of)]
        assert layers, f"the model has no {same_config_of} layer"
        for layer in layers:
            loaded = reloaded.get_layer(layer.name)
            assert type(loaded) is type(layer)
            assert loaded.get_config() == layer.get_config()
    return reloaded


# --- the CLI contract: a smoke run ------------------------------------------------------

# What every training run writes; a project's own files come on top (`extra`).
RUN_DIR_FILES = ("config.json", "run.json", "state.json", "metrics.json", "history.csv",
                 "training_curves.png", "checkpoints/best.keras")


@dataclasses.dataclass(frozen=True)
class SmokeRun:
    """A finished `train --smoke [--export-dir ...]` of `project` on the real `data` folder."""

    project: object
    data: str
    run_dir: str
    export_dir: str

    def path(self, *parts):
        return os.path.join(self.run_dir, *parts)

    def read_json(self, name):
        with open(self.path(name), encoding="utf-8") as f:
            return json.load(f)

    def config(self):
        from tf_finetune.config import load_run_config

        return load_run_config(self.project.config_class, self.path("config.json"))

    def best_model(self):
        import keras

        return keras.models.load_model(self.path("checkpoints", "best.keras"))


def smoke_train(project, dataset, tmp_path_factory, *args, export=True):
    """`train --smoke` of `project` on the real `dataset` folder, exporting version 1 (none
    with `export=False`, for tests that export the run themselves; `export_dir` is then "").

    For the CLI tests' module-scoped `smoke_run` fixture; skips (fails in CI) without the data.
    """
    from tf_finetune.cli import main

    data = require_data(dataset)
    out = tmp_path_factory.mktemp(project.name)
    run = SmokeRun(project, data, str(out / "run"), str(out / "exports") if export else "")
    exporting = ["--export-dir", run.export_dir] if export else []
    status = main(project, ["train", "--smoke", "--data-dir", data, *args, "--output-dir", run.run_dir, *exporting])
    assert status == 0
    return run


def assert_export_command_works_in_a_fresh_process(run, tmp_path):
    """`export --run-dir RUN` as a user runs it, in a new process: loading the saved model
    needs the project's custom layers registered before any of its modules is imported."""
    export_dir = str(tmp_path / "exported")
    result = run_cli(run.project.name, "export", "--run-dir", run.run_dir, "--export-dir", export_dir)
    assert result.status == 0, result.err[-3000:]
    assert sorted(os.listdir(export_dir)) == ["1"]


def assert_run_dir_complete(run, extra=()):
    """The run directory holds every standard file, the project's `extra` ones and TensorBoard
    event files under logs/; returns the validation report (metrics.json)."""
    for name in (*RUN_DIR_FILES, *extra):
        assert os.path.isfile(run.path(name)), name
    events = [f for _, _, files in os.walk(run.path("logs")) for f in files if f.startswith("events")]
    assert events, "no TensorBoard event files under logs/"
    return run.read_json("metrics.json")


def assert_export_versions(export_dir, versions=("1",)):
    """Exactly these version folders: no temporary folder left behind."""
    assert sorted(os.listdir(export_dir)) == sorted(versions)


# --- the CLI contract: serving ----------------------------------------------------------

# Serves the SavedModel in a process of its own: argv = version folder, inputs JSON; prints
# every output as JSON (strings decoded), its dtypes, and which of our packages got imported.
SERVE_SCRIPT = """\
import base64, json, sys
import tensorflow as tf
{imports}
spec = json.load(open(sys.argv[2], encoding="utf-8"))
raw = [base64.b64decode(v) for v in spec["values"]] if spec["bytes"] else spec["values"]
out = tf.saved_model.load(sys.argv[1]).signatures["serving_default"](tf.constant(raw))
print(json.dumps({{
    "outputs": {{k: [s.decode() for s in v.numpy()] if v.dtype == tf.string else v.numpy().tolist()
                for k, v in out.items()}},
    "dtypes": {{k: v.dtype.name for k, v in out.items()}},
    "imported": sorted(m for m in ("keras_hub", "tf_finetune", "projects") if m in sys.modules),
}}))
"""


def serve_in_fresh_process(version_dir, raw, tmp_path, imports=()):
    """The SavedModel's `serving_default` outputs on `raw` (str or bytes values), computed
    by a new Python process that imports only TensorFlow and `imports` (e.g. tensorflow_text)."""
    is_bytes = bool(raw) and isinstance(raw[0], bytes)
    values = [base64.b64encode(v).decode() for v in raw] if is_bytes else list(raw)
    inputs = os.path.join(str(tmp_path), "serve_inputs.json")
    with open(inputs, "w", encoding="utf-8") as f:
        json.dump({"bytes": is_bytes, "values": values}, f)
    script = SERVE_SCRIPT.format(imports="\n".join(f"import {m}" for m in imports))
    result = subprocess.run([sys.executable, "-c", script, version_dir, inputs], capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["imported"] == [], "the SavedModel needed Python code of keras-hub or this repo"
    return served


def keras_probabilities(run, model, raw):
    """What a classifier's best.keras gives for `raw` inputs (through the project's preprocess)."""
    import tensorflow as tf

    preprocess = run.project.preprocess(run.config())
    return {"probabilities": model.predict_on_batch(preprocess(tf.constant(raw)))}


def assert_savedmodel_serves_like_keras(run, raw, tmp_path, *, keras_outputs=keras_probabilities,
                                        imports=(), atol=1e-5):
    """The contract of an export: one version folder, served in a fresh process on the same
    raw inputs, equals the Keras best.keras (numbers within `atol`, strings exactly).

    `keras_outputs(run, model, raw) -> {output name: values}` says what the Keras model
    computes; by default a classifier's probabilities. A served classifier's probabilities are
    float32, sum to one, and its labels are the run's class names at their argmax.
    Returns the served outputs.
    """
    import numpy as np

    assert_export_versions(run.export_dir)
    served = serve_in_fresh_process(os.path.join(run.export_dir, "1"), raw, tmp_path, imports)
    outputs = served["outputs"]
    expected = keras_outputs(run, run.best_model(), raw)
    for name, values in expected.items():
        values = np.asarray(values)
        if values.dtype.kind in "OS":  # bytes from a string tensor
            values = np.asarray([v.decode() for v in values.ravel()])
        assert_same_outputs([np.asarray(outputs[name])], [values], atol)
    if "probabilities" in outputs:
        probs = np.asarray(outputs["probabilities"])
        class_names = run.read_json("run.json")["class_names"]
        assert probs.shape == (len(raw), len(class_names)) and served["dtypes"]["probabilities"] == "float32"
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert outputs["labels"] == [class_names[i] for i in probs.argmax(axis=1)]
    return outputs


def predict_json(project, model, inputs, capsys):
    """`predict --json --model MODEL INPUTS...` in this process: one dict per printed line."""
    from tf_finetune.cli import main

    capsys.readouterr()
    assert main(project, ["predict", "--model", model, "--json", *inputs]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def assert_predict_agrees(run, inputs, capsys, count):
    """`predict` from the run directory (Keras) and from the export (SavedModel) print the same
    `count` results (probabilities within 1e-5, everything else exactly); returns them."""
    import numpy as np

    from_savedmodel = predict_json(run.project, run.export_dir, inputs, capsys)
    from_run = predict_json(run.project, run.run_dir, inputs, capsys)
    assert len(from_run) == len(from_savedmodel) == count
    for a, b in zip(from_run, from_savedmodel):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], (float, list)):
                np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=key)
            else:
                assert a[key] == b[key], key
    return from_run


# --- the CLI contract: bad input ---------------------------------------------------------

# Lines TensorFlow prints while it loads; the CLI hides them unless --verbose.
TF_START_UP_MARKERS = ("absl::InitializeLog", "oneDNN", "cudart", "cuda_", "cpu_feature_guard")
# `error: ...` from the CLI, or argparse's `python -m projects.NAME COMMAND: error: ...`.
ERROR_LINE = re.compile(r"^(python -m projects\.\w+( \w+)?: )?error: ")


@dataclasses.dataclass(frozen=True)
class CliResult:
    status: int
    out: str
    err: str
    in_process: bool = False  # TensorFlow's own lines then depend on what ran before in the process


def run_cli(project_name, *args, **env):
    """`python -m projects.PROJECT_NAME ARGS...` in a new process, offline, as a user runs it:
    without TF_CPP_MIN_LOG_LEVEL (so hiding TensorFlow's start-up lines is the CLI's work).
    `env` adds or replaces environment variables."""
    child = dict(os.environ, TF_FINETUNE_OFFLINE="1", **env)
    child.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run([sys.executable, "-m", f"projects.{project_name}", *args], cwd=REPO,
                            env=child, capture_output=True, text=True, timeout=300)
    return CliResult(result.returncode, result.stdout, result.stderr)


def call_cli(project, args, capture):
    """`tf_finetune.cli.main(project, args)` in this process, its output read from `capture`
    (pytest's capsys or capfd); an argparse exit counts as its status."""
    from tf_finetune.cli import main

    capture.readouterr()
    try:
        status = main(project, args)
    except SystemExit as e:
        status = e.code
    out, err = capture.readouterr()
    return CliResult(status, out, err, in_process=True)


def tf_start_up_lines(text):
    """The lines of `text` that TensorFlow prints while it loads."""
    return [line for line in text.splitlines() if any(m in line for m in TF_START_UP_MARKERS)]


def error_lines(text):
    """The CLI's (or argparse's) `error:` lines in `text`."""
    return [line for line in text.splitlines() if ERROR_LINE.match(line)]


def assert_one_line_error(result, *fragments, run_dir=None, alone=False):
    """A rejected command: exit status 2, exactly one error line holding every fragment, no
    traceback, none of TensorFlow's start-up lines, and (given `run_dir`) no run directory
    written. `alone`: the error line is all of stderr. Returns the line."""
    context = result.err[-3000:]
    assert result.status == 2, context
    errors = error_lines(result.err)
    assert len(errors) == 1, context
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.out + result.err
    if not result.in_process:
        assert not tf_start_up_lines(result.err), context
    if alone:
        assert result.err.strip().splitlines() == errors, context
    if run_dir is not None:
        assert not os.path.exists(run_dir), f"the failed command wrote {run_dir}"
    return errors[0]


# --- LiteRT and ONNX exports ---


def read_export(folder):
    """An export version folder's export.json."""
    with open(os.path.join(folder, "export.json")) as f:
        return json.load(f)


CLIENT_ONLY = """
import runpy, sys
sys.argv = ["client.py", *sys.argv[1:]]
runpy.run_path("{client}", run_name="__main__")
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
