"""Exports in several formats into one version folder, each verified before it is published.

```
EXPORT_DIR/<version>/
  saved_model.pb, variables/, assets/labels.txt   --format saved_model: raw inputs in (TF Serving)
  model.tflite, model_<quantize>.tflite           --format litert [--quantize ...]: tensors in
  model.onnx                                      --format onnx: tensors in
  labels.txt, preprocessing.json, vocabulary.txt  what a client needs to make the tensors
  client.py                                       that client (numpy + the runtime only)
  export.json, README.md                          the figures of every format; the model card
```

`export.json` gives each file's raw and gzip size (`bytes`, `gzip_bytes`; a SavedModel's as a
tar of its files) and, for a run whose plan pruned, a `pruning` section: the pruned kernels'
sparsity, each and overall, and the plan's target (`tf_finetune.models.pruning`).

Everything is written to a reserved temporary folder (`serving.versions`), checked, and only
then renamed. The checks, on the run's validation set:

- SavedModel: reloaded and compared with Keras on raw inputs (<= 1e-5), as before;
- LiteRT float and ONNX: every validation example within `tolerance` (1e-4) of Keras;
- LiteRT float16: a mean |difference| within 1e-3, and the accuracy gate below. Not a bound on
  the largest difference: rounding the weights to float16 moves an example that is a near-tie
  between two classes by a few hundredths (PlantVillage's MobileNetV2: up to 0.045 over 498
  images, 0.010 for Keras itself with float16-rounded weights, while the median example moves
  by 2e-6);
- LiteRT dynamic-range and int8: accuracy and agreement with the Keras model; an accuracy
  more than `max_accuracy_drop` points below the Keras model's refuses the whole export.
"""

import dataclasses
import datetime
import json
import logging
import os
import shutil
import time

import numpy as np

from tf_finetune import files
from tf_finetune.errors import UserError
from tf_finetune.errors import first_line

logger = logging.getLogger(__name__)

FORMATS = ("saved_model", "litert", "onnx")
FLOAT16_MEAN_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class ExportRequest:
    """What `export` writes (the CLI's export flags).

    Attributes:
        formats: some of `FORMATS`.
        quantize: LiteRT variants, some of `litert.QUANTIZATIONS`.
        calibration_examples: training examples the int8 variant is calibrated on.
        int8_io: int8 inputs and outputs for the int8 variant (else float).
        max_accuracy_drop: the largest accuracy drop (points) a quantized variant may show.
        tolerance: the largest |artifact - Keras| of a float artifact.
        num_threads: the threads LiteRT and ONNX Runtime use when verifying.
    """

    formats: tuple = ("saved_model",)
    quantize: tuple = ("none",)
    calibration_examples: int = 300
    int8_io: bool = False
    max_accuracy_drop: float = 1.0
    tolerance: float = 1e-4
    num_threads: int = 2

    def check(self, flag="--format"):
        from tf_finetune.serving import litert

        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise UserError(f"{flag} {' '.join(self.formats)}: expected some of {', '.join(FORMATS)}.")
        bad = [q for q in self.quantize if q not in litert.QUANTIZATIONS]
        if bad or not self.quantize:
            raise UserError(f"--quantize {' '.join(self.quantize)}: expected some of "
                            f"{', '.join(litert.QUANTIZATIONS)}.")
        if tuple(self.quantize) != ("none",) and "litert" not in self.formats:
            raise UserError(f"--quantize {' '.join(self.quantize)} applies to LiteRT files: add "
                            "--format litert (with any other formats).")
        if self.calibration_examples < 1:
            raise UserError(f"--calibration-examples must be at least 1. Received: {self.calibration_examples}")
        if not 0 <= self.max_accuracy_drop <= 100:
            raise UserError(f"--max-accuracy-drop is in points, 0 to 100. Received: {self.max_accuracy_drop}")

    @property
    def tensor_formats(self):
        return [f for f in self.formats if f != "saved_model"]


def export(model, *, project, config, record, export_dir, request, examples, data=None):
    """Exports `model` (an ordinary Keras model: LoRA merged) in `request.formats`.

    Args:
        model: the trained classifier, raw model inputs in, probabilities out.
        project: the `Project` (its `preprocess` and `tensor_model`).
        config, record: the run's config and run.json record.
        export_dir: the folder of numbered versions.
        request: an `ExportRequest`.
        examples: raw inputs (bytes or str) for the SavedModel's raw-input check.
        data: the run's `Data`; needed for LiteRT and ONNX (their validation checks, and int8
            calibration).

    Returns:
        `(path of the version folder, the export.json record)`.
    """
    from tf_finetune.models import pruning
    from tf_finetune.serving import saved_model
    from tf_finetune.serving import versions

    request.check()
    class_names = list(record["class_names"])
    tensor_model = None
    if request.tensor_formats:
        if project.tensor_model is None:
            raise UserError(f"--format {' '.join(request.tensor_formats)}: {project.name} exports only "
                            "a SavedModel (its model cannot be split into tensors in, probabilities out).")
        tensor_model = project.tensor_model(model, config)
        validation = _validation(model, tensor_model, data)
    info = {
        "project": project.name,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "class_names": class_names,
        "data_dir": record.get("data_dir"),
        "formats": {},
    }
    with versions.published(export_dir) as (version, tmp, final):
        info["version"] = version
        if "saved_model" in request.formats:
            saved_model.write_saved_model(
                model, saved_model.classifier_serving(model, project.preprocess(config), class_names), tmp,
                assets={"labels.txt": "".join(f"{name}\n" for name in class_names)})
            diff = saved_model.verify(tmp, model, project.preprocess(config), examples, 1e-5)
            info["formats"]["saved_model"] = {
                "file": "saved_model.pb", **saved_model.sizes(tmp), "inputs": "raw (1-D tf.string)",
                "verified_on": f"{len(examples)} raw validation inputs", "max_abs_diff": diff}
        if tensor_model is not None:
            info["validation"] = {"examples": len(validation.labels),
                                  "keras_accuracy": validation.accuracy(validation.keras)}
            _write_client_files(tmp, tensor_model, class_names)
            if "litert" in request.formats:
                for quantize in request.quantize:
                    name, entry = _litert(tmp, tensor_model, quantize, validation, data, request)
                    info["formats"][name] = entry
            if "onnx" in request.formats:
                name, entry = _onnx(tmp, tensor_model, validation, request)
                info["formats"][name] = entry
            if validation.raw:
                info["validation"]["client_agreement"] = _check_client_preprocessing(tmp, validation)
        summary = pruning.export_summary(model, record.get("plan"))
        if summary is not None:
            info["pruning"] = summary
        info["config"] = config.to_dict()
        files.write_json(info, os.path.join(tmp, "export.json"))
        from tf_finetune.serving import model_card

        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(model_card.render(info, tensor_model.spec() if tensor_model else None))
    for name, entry in info["formats"].items():
        logger.info("Exported %s: %s", name, _describe(entry))
    logger.info("Exported version %d to %s.", version, final)
    return final, info


@dataclasses.dataclass
class _Validation:
    tensors: list  # one numpy array per tensor input, all examples
    labels: np.ndarray
    keras: np.ndarray  # the Keras model's probabilities
    raw: list  # the raw texts, when the model takes text (images come decoded)

    def accuracy(self, probabilities):
        return float(np.mean(np.argmax(probabilities, -1) == self.labels))

    def agreement(self, probabilities):
        return float(np.mean(np.argmax(probabilities, -1) == np.argmax(self.keras, -1)))


def _validation(model, tensor_model, data):
    """The validation set as tensors, with labels and the Keras model's probabilities."""
    if data is None:
        raise ValueError("LiteRT and ONNX exports are verified on the run's validation data: pass `data`.")
    tensors, labels, keras_probs, raw = [], [], [], []
    for inputs, y in data.val:
        keras_probs.append(np.asarray(model(inputs, training=False), np.float32))
        tensors.append(tensor_model.to_tensors(inputs))
        labels.append(np.asarray(y))
        if getattr(inputs, "dtype", None) is not None and inputs.dtype.name == "string":
            raw.extend(t.decode("utf-8") for t in inputs.numpy())
    tensors = [np.concatenate([batch[i] for batch in tensors]) for i in range(len(tensors[0]))]
    labels = np.concatenate(labels)
    if labels.ndim > 1:  # one-hot
        labels = labels.argmax(-1)
    return _Validation(tensors, labels, np.concatenate(keras_probs), raw)


def _check_client_preprocessing(folder, validation):
    """The share of validation texts for which client.py (pre-processing from
    preprocessing.json, in plain Python) makes exactly the tensors the model's own layers make.

    Below 99% the export is refused: the LiteRT and ONNX files would answer differently from the
    SavedModel for clients that follow preprocessing.json.
    """
    from tf_finetune.serving import client

    made = client.Client(folder).tensors(validation.raw)
    same = np.ones(len(validation.raw), bool)
    for got, want in zip(made, validation.tensors):
        same &= np.all(np.asarray(got).reshape(len(want), -1) == want.reshape(len(want), -1), axis=1)
    agreement = float(same.mean())
    if agreement < 1.0:
        first = validation.raw[int(np.argmin(same))]
        logger.warning("client.py's pre-processing differs from the model's on %d of %d validation texts "
                       "(the first: %r).", int((~same).sum()), len(same), first[:80])
    if agreement < 0.99:
        raise UserError(f"The documented pre-processing (preprocessing.json, client.py) makes different tensors "
                        f"than the model for {int((~same).sum())} of {len(same)} validation texts; nothing was "
                        "exported: export --format saved_model, and report this as a bug.")
    return agreement


def _calibration(tensor_model, data, n):
    """The representative dataset for int8: `n` training examples without augmentation."""
    source = getattr(data, "calibration", None)
    if source is None:
        logger.info("Calibrating int8 on the training batches as training sees them (augmented).")
        source = data.train
    examples = []
    for inputs, _ in source:
        tensors = tensor_model.to_tensors(inputs)
        for i in range(len(tensors[0])):
            examples.append([t[i: i + 1] for t in tensors])
            if len(examples) >= n:
                break
        if len(examples) >= n:
            break
    logger.info("Calibrating int8 on %d training examples.", len(examples))
    return lambda: iter(examples)


def _run(path, validation, request):
    from tf_finetune.cli.tensorflow_logs import quiet_native_output
    from tf_finetune.serving import client

    with quiet_native_output():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" line
        run = client.load_runner(path, num_threads=request.num_threads)
        run([t[:1] for t in validation.tensors])
    start = time.perf_counter()
    probabilities = np.asarray(run(validation.tensors), np.float32)
    seconds = time.perf_counter() - start
    return probabilities, len(validation.labels) / seconds


def _litert(folder, tensor_model, quantize, validation, data, request):
    from tf_finetune.serving import litert
    from tf_finetune.serving import saved_model

    calibration = (_calibration(tensor_model, data, request.calibration_examples) if quantize == "int8" else None)
    try:
        content, batch = litert.convert(tensor_model, quantize, calibration=calibration,
                                        int8_io=request.int8_io)
    except Exception as e:  # noqa: BLE001
        first = first_line(e)
        raise UserError(f"--format litert --quantize {quantize}: the LiteRT converter failed ({first[:300]}); "
                        "nothing was exported: try another --quantize, or export without litert.") from None
    name = litert.file_name(quantize)
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(content)
    entry = {"file": name, "format": "litert", "quantize": quantize, "bytes": len(content),
             "gzip_bytes": saved_model.gzip_bytes(path), "batch": batch or "any"}
    if quantize == "int8":
        entry["calibration_examples"] = request.calibration_examples
        entry["int8_io"] = request.int8_io
    _check(entry, path, validation, request, tolerance=request.tolerance if quantize == "none" else None,
           mean_tolerance=FLOAT16_MEAN_TOLERANCE if quantize == "float16" else None)
    return name, entry


def _onnx(folder, tensor_model, validation, request):
    from tf_finetune.serving import onnx
    from tf_finetune.serving import saved_model

    try:
        content = onnx.convert(tensor_model)
    except Exception as e:  # noqa: BLE001
        first = first_line(e)
        raise UserError(f"--format onnx: the ONNX conversion failed ({first[:300]}); nothing was exported: "
                        "export without onnx.") from None
    path = os.path.join(folder, onnx.FILE)
    with open(path, "wb") as f:
        f.write(content)
    entry = {"file": onnx.FILE, "format": "onnx", "quantize": "none", "bytes": len(content),
             "gzip_bytes": saved_model.gzip_bytes(path), "batch": "any"}
    _check(entry, path, validation, request, tolerance=request.tolerance)
    return onnx.FILE, entry


def _check(entry, path, validation, request, *, tolerance, mean_tolerance=None):
    """Runs the artifact on the validation tensors; records and enforces its figures: a float
    file's largest difference from Keras (`tolerance`), else its mean difference
    (`mean_tolerance`, if given) and the accuracy gate."""
    probabilities, per_second = _run(path, validation, request)
    differences = np.abs(probabilities - validation.keras)
    diff = float(np.max(differences))
    mean_diff = float(np.mean(differences))
    keras_accuracy = validation.accuracy(validation.keras)
    accuracy = validation.accuracy(probabilities)
    entry.update({
        "verified_on": f"{len(validation.labels)} validation examples",
        "max_abs_diff": diff,
        "mean_abs_diff": mean_diff,
        "accuracy": accuracy,
        "keras_accuracy": keras_accuracy,
        "agreement": validation.agreement(probabilities),
        "examples_per_second": round(per_second, 1),
    })
    what = f"{entry['format']}" + (f" --quantize {entry['quantize']}" if entry["format"] == "litert" else "")
    if tolerance is not None:
        if not diff <= tolerance:
            raise UserError(f"--format {what}: {entry['file']} differs from the Keras model by up to {diff:.3g} "
                            f"on {len(validation.labels)} validation examples (allowed {tolerance:g}); nothing "
                            "was exported.")
        return
    if mean_tolerance is not None and not mean_diff <= mean_tolerance:
        raise UserError(f"--format {what}: {entry['file']} differs from the Keras model by {mean_diff:.3g} on "
                        f"average over {len(validation.labels)} validation examples (allowed {mean_tolerance:g}); "
                        "nothing was exported.")
    drop = 100 * (keras_accuracy - accuracy)
    if drop > request.max_accuracy_drop:
        raise UserError(
            f"--format {what}: accuracy {100 * accuracy:.2f}% on {len(validation.labels)} validation examples, "
            f"{drop:.2f} points below the float model's {100 * keras_accuracy:.2f}% (--max-accuracy-drop "
            f"{request.max_accuracy_drop:g}); nothing was exported: {_remedy(entry)}.")


def _remedy(entry):
    if entry["quantize"] == "int8":
        return "try more --calibration-examples, --quantize dynamic or float16, or a larger --max-accuracy-drop"
    if entry["quantize"] == "float16":
        return "try --quantize none, or a larger --max-accuracy-drop"
    return "try --quantize float16, or a larger --max-accuracy-drop"


def _write_client_files(folder, tensor_model, class_names):
    from tf_finetune.serving import client

    with open(os.path.join(folder, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"{name}\n" for name in class_names))
    for name, text in tensor_model.assets.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(text)
    with open(os.path.join(folder, "preprocessing.json"), "w", encoding="utf-8") as f:
        json.dump(tensor_model.spec(), f, indent=2)
        f.write("\n")
    shutil.copyfile(client.__file__, os.path.join(folder, "client.py"))


def _describe(entry):
    parts = [f"{entry['bytes'] / 1e6:.2f} MB"]
    if "accuracy" in entry:
        parts.append(f"accuracy {100 * entry['accuracy']:.2f}% (Keras {100 * entry['keras_accuracy']:.2f}%)")
        parts.append(f"agreement {100 * entry['agreement']:.2f}%")
    parts.append(f"max |diff| {entry['max_abs_diff']:.2e}")
    return ", ".join(parts)
