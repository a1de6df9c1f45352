"""The README.md of an export folder: data, classes, each format's figures, and how to call it."""

import json

INPUT_KINDS = {
    "image": "an image file (JPEG, PNG, BMP, GIF), decoded to RGB, resized (bilinear, half-pixel centers, no "
             "antialiasing) to {size[0]}x{size[1]}, rounded to 8-bit, as float32 0-255 in NHWC (the model "
             "normalises itself)",
    "text_vocabulary": "UTF-8 text, standardized (`{standardize}`), split on whitespace, looked up in "
                       "`{vocabulary}` (line i is id i; unknown words {oov_id}), cut or padded with {pad_id} to "
                       "{max_length} ids",
    "wordpiece": "UTF-8 text, BERT WordPiece tokens from `{vocabulary}` (lowercase: {lowercase}), "
                 "[CLS] ... [SEP], cut or padded to {max_length}, with a padding mask",
}


def render(info, spec):
    """Markdown for `info` (export.json) and `spec` (preprocessing.json, None without one)."""
    config = info.get("config", {})
    lines = [
        f"# {info['project']} export, version {info['version']}",
        "",
        f"Exported {info['created']} from a `{info['project']}` run (`python -m projects.{info['project']} "
        "export`, or `train --export-dir`).",
        "",
        "## Data and classes",
        "",
        f"- Trained on: `{config.get('dataset', '?')}` from `{info.get('data_dir')}`",
        f"- Classes ({len(info['class_names'])}, in output order; also `labels.txt`): "
        + ", ".join(f"`{c}`" for c in info["class_names"]),
    ]
    if "pruning" in info:
        p = info["pruning"]
        lines.append(f"- Pruned by weight magnitude to {100 * p['target_sparsity']:.0f}%: "
                     f"{100 * p['sparsity']:.1f}% of the weights of {len(p['layers'])} kernels are zeros (`pruning` "
                     "in `export.json`); the `gzip_bytes` of each file show what they save.")
    if "validation" in info:
        v = info["validation"]
        lines.append(f"- Checked on {v['examples']} validation examples; the Keras model's accuracy there: "
                     f"{100 * v['keras_accuracy']:.2f}% (a validation figure: settings were chosen on it).")
    lines += ["", "## Formats", "",
              "| file | format | inputs | size | accuracy | agreement with Keras | max abs diff | examples/s |",
              "|---|---|---|---|---|---|---|---|"]
    for name, e in info["formats"].items():
        fmt = e.get("format", "saved_model") + (f" {e['quantize']}" if e.get("format") == "litert" else "")
        inputs = e.get("inputs") or ("tensors, batch 1" if e.get("batch") == 1 else "tensors")
        acc = f"{100 * e['accuracy']:.2f}%" if "accuracy" in e else "-"
        agree = f"{100 * e['agreement']:.2f}%" if "agreement" in e else "-"
        speed = f"{e['examples_per_second']:.0f}" if "examples_per_second" in e else "-"
        lines.append(f"| `{name}` | {fmt} | {inputs} | {e['bytes'] / 1e6:.2f} MB | {acc} | {agree} | "
                     f"{e['max_abs_diff']:.1e} | {speed} |")
    lines += ["", "Every file was checked against the Keras model before this folder was published "
              "(see `export.json`)."]
    if "saved_model" in info["formats"]:
        lines += [
            "", "## TF Serving (SavedModel, raw inputs)", "",
            "The `serving_default` signature takes a 1-D string tensor of raw inputs (encoded image bytes or "
            "UTF-8 text) and returns `probabilities` and `labels`:", "",
            "```bash",
            f"docker run -p 8501:8501 -v $PWD/..:/models/{info['project']} -e MODEL_NAME={info['project']} "
            "tensorflow/serving",
            f"curl -d '{{\"instances\": [{_rest_example(spec)}]}}' "
            f"localhost:8501/v1/models/{info['project']}:predict",
            "```",
        ]
    if spec is not None:
        p = spec["preprocessing"]
        described = INPUT_KINDS.get(p["kind"], p["kind"]).format(**p)
        inputs = ", ".join(f"`{i['name']}` {i['dtype']} {_shape(i['shape'])}" for i in spec["inputs"])
        keywords = ", ".join(f"{i['name']}={i['name']}" for i in spec["inputs"])
        lines += [
            "", "## LiteRT and ONNX (tensors in)", "",
            f"These files take tensors, not raw inputs: {inputs}. Pre-processing: {described}. "
            "`preprocessing.json` says the same for programs:", "",
            "```json", json.dumps(p, indent=2), "```", "",
            "`client.py` does that pre-processing and runs the model with nothing but numpy and the runtime "
            "(`pip install ai-edge-litert` or `onnxruntime`; Pillow for images):", "",
            "```bash",
            "python client.py model.tflite INPUT...     # or model.onnx, or this folder",
            "```", "",
            "```python",
            "from ai_edge_litert.interpreter import Interpreter",
            "runner = Interpreter(\"model.tflite\", num_threads=2).get_signature_runner()",
            f"probabilities = list(runner({keywords}).values())[0]",
            "",
            "import onnxruntime",
            "session = onnxruntime.InferenceSession(\"model.onnx\", providers=[\"CPUExecutionProvider\"])",
            "probabilities = session.run(None, {" + ", ".join(f'\"{i["name"]}\": {i["name"]}' for i in spec["inputs"])
            + "})[0]",
            "```",
        ]
        if any(e.get("batch") == 1 for e in info["formats"].values()):
            lines += ["", "Files marked \"batch 1\" take one example per call (their recurrent layers need "
                      "static shapes in LiteRT's built-in ops)."]
    return "\n".join(lines) + "\n"


def _shape(shape):
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


def _rest_example(spec):
    if spec and spec["preprocessing"]["kind"] == "image":
        return '{"b64": "<base64 of the image file>"}'
    return '"a sentence to classify"'
