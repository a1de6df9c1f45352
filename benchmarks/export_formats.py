"""Exported formats side by side: size, validation accuracy, agreement with Keras, speed.

For each finished run given, one `export` into a fresh folder with every format the project
can carry (SavedModel; LiteRT float, float16, dynamic-range, int8; ONNX), then, in this one
process, each artifact's speed measured alternately with the others:

- `latency`: one example per call (batch 1, 2 threads), the median over `--rounds` rounds in
  which every format runs once in turn, after a warm-up call each;
- `examples/s`: the first `--speed-examples` validation examples (512), batch 32 where the
  file takes any batch (LiteRT files fixed at batch 1 run one by one), the best of two
  alternating passes.

The SavedModel is timed twice: on raw inputs through its `serving_default` (decoding or
tokenizing included, as TF Serving runs it) and on the tensors the other formats take
(`tf.function` of the Keras model), so the comparison with LiteRT and ONNX is like for like.
Accuracy and agreement are on the run's validation split, as `export.json` records them.

Goals (2 CPU cores): plant_cnn int8 within 0.5 point of the float SavedModel's validation
accuracy, its file <= 30% of the float LiteRT file, batch-1 latency >= 1.5x faster than the
SavedModel's; sentiment_lstm and bert_classifier dynamic-range LiteRT within 0.5 point of float;
ONNX float parity <= 1e-4 on every validation example for plant_cnn and sentiment_lstm.

    python benchmarks/export_formats.py RUN_DIR... [--rounds 50] [--speed-examples 512] [--out DIR] [--no-write]
    python benchmarks/export_formats.py --int8-only RUN_DIR... [--out DIR] [--no-write]

`--int8-only` exports only the float and int8 LiteRT files of each run (runs of one config with
different seeds, say) and records a row per run with the int8 file's accuracy drop and size
against the float file, then their mean, in `benchmarks/results/export_int8.md`: one run's
validation split holds a few hundred images, so a drop of one image moves it by 0.2 points.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import runs  # noqa: E402

# What each project's export carries; LiteRT int8 only where it converts (images).
FORMATS = {
    "plant_cnn": ["--format", "saved_model", "litert", "onnx", "--quantize", "none", "float16", "dynamic", "int8"],
    "sentiment_lstm": ["--format", "saved_model", "litert", "onnx", "--quantize", "none", "float16", "dynamic"],
    "bert_classifier": ["--format", "saved_model", "litert", "onnx", "--quantize", "none", "dynamic"],
}


INT8_ONLY = ["--format", "litert", "--quantize", "none", "int8", "--max-accuracy-drop", "100"]


def export(run_dir, out, formats=None, name=None):
    with open(os.path.join(run_dir, "run.json")) as f:
        project = json.load(f)["project"]
    export_dir = os.path.join(out, name or project)
    shutil.rmtree(export_dir, ignore_errors=True)
    command = [sys.executable, "-m", f"projects.{project}", "export", "--run-dir", run_dir,
               "--export-dir", export_dir, *(formats or FORMATS[project])]
    print("==", " ".join(command[1:]), flush=True)
    start = time.time()
    subprocess.run(command, cwd=REPO, check=True)
    print(f"== exported in {time.time() - start:.0f} s", flush=True)
    return project, os.path.join(export_dir, "1"), time.time() - start


def measure(project_name, run_dir, folder, rounds, speed_examples):
    """{artifact: {"latency_ms", "per_second"}}, all timed in this process, alternating."""
    import importlib

    import numpy as np
    import tensorflow as tf

    from tf_finetune.run_dir import load_run
    from tf_finetune.serving import client
    from tf_finetune.serving import saved_model

    project = importlib.import_module(f"projects.{project_name}.project").PROJECT
    project.import_model_code()
    config, record, model = load_run(run_dir, project.name, project.config_class)
    data = project.load_data(config, record["data_dir"])
    tensor_model = project.tensor_model(model, config)
    inputs, count = [], 0
    for x, _ in data.val:
        inputs.append(x)
        count += len(x)
        if count >= speed_examples:
            break
    tensors = [np.concatenate(t)[:speed_examples] for t in zip(*[tensor_model.to_tensors(x) for x in inputs])]
    raw = project.read_inputs(record["examples"])[:1]
    n = len(tensors[0])

    serve = saved_model.load_saved_model(folder).signatures[saved_model.SIGNATURE]
    on_tensors = tf.function(lambda *t: tensor_model.model(list(t) if len(t) > 1 else t[0], training=False))
    runners = {"saved_model (raw inputs)": None, "tf (tensors)": None}
    with open(os.path.join(folder, "export.json")) as f:
        info = json.load(f)
    for name, entry in info["formats"].items():
        if name != "saved_model":
            runners[name] = client.load_runner(os.path.join(folder, name), num_threads=2)

    def call(name, batch):
        if name == "saved_model (raw inputs)":
            return serve(tf.constant(raw * len(batch[0])))
        if name == "tf (tensors)":
            return on_tensors(*[tf.constant(t) for t in batch])
        return runners[name](batch)

    one = [t[:1] for t in tensors]
    for name in runners:
        call(name, one)  # warm-up: tracing, allocation
    latency = {name: [] for name in runners}
    for _ in range(rounds):
        for name in runners:
            start = time.perf_counter()
            call(name, one)
            latency[name].append(time.perf_counter() - start)
    speed = {name: 0.0 for name in runners}
    for _ in range(2):
        for name in runners:
            start = time.perf_counter()
            for i in range(0, n, 32):
                call(name, [t[i: i + 32] for t in tensors])
            speed[name] = max(speed[name], n / (time.perf_counter() - start))
    return {name: {"latency_ms": 1000 * float(np.median(latency[name])), "per_second": speed[name]}
            for name in runners}, info


def table(results):
    lines = ["| project | artifact | size | val accuracy | agreement with Keras | max abs diff | "
             "batch-1 latency | vs SavedModel | examples/s (batch 32) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for project, (speeds, info) in results.items():
        base = speeds["saved_model (raw inputs)"]["latency_ms"]
        keras_accuracy = info["validation"]["keras_accuracy"]
        for name, speed in speeds.items():
            entry = info["formats"].get("saved_model" if name.startswith("saved_model") else name, {})
            size = f"{entry['bytes'] / 1e6:.2f} MB" if entry else "-"
            accuracy = entry.get("accuracy", keras_accuracy if name != "tf (tensors)" else None)
            acc = f"{100 * accuracy:.2f}%" if accuracy is not None else "-"
            agree = f"{100 * entry['agreement']:.2f}%" if "agreement" in entry else "-"
            diff = f"{entry['max_abs_diff']:.1e}" if "max_abs_diff" in entry else "-"
            lines.append(f"| {project} | {name} | {size} | {acc} | {agree} | {diff} | "
                         f"{speed['latency_ms']:.2f} ms | {base / speed['latency_ms']:.2f}x | "
                         f"{speed['per_second']:.0f} |")
    return "\n".join(lines)


def int8_table(infos):
    """A row per run (name -> export.json): float and int8 LiteRT accuracy, drop and sizes; then the mean."""
    lines = ["| run | seed | val images | float LiteRT | int8 LiteRT | drop (points) | agreement | "
             "float file | int8 file | int8 / float |", "|---|---|---|---|---|---|---|---|---|---|"]
    drops, ratios = [], []
    for name, info in infos.items():
        fl, q = info["formats"]["model.tflite"], info["formats"]["model_int8.tflite"]
        drops.append(100 * (fl["accuracy"] - q["accuracy"]))
        ratios.append(q["bytes"] / fl["bytes"])
        lines.append(f"| {name} | {info['config']['seed']} | {info['validation']['examples']} | "
                     f"{100 * fl['accuracy']:.2f}% | {100 * q['accuracy']:.2f}% | {drops[-1]:.2f} | "
                     f"{100 * q['agreement']:.2f}% | {fl['bytes'] / 1e6:.2f} MB | {q['bytes'] / 1e6:.2f} MB | "
                     f"{100 * ratios[-1]:.1f}% |")
    lines.append(f"| mean of {len(infos)} | - | - | - | - | {sum(drops) / len(drops):.2f} | - | - | - | "
                 f"{100 * sum(ratios) / len(ratios):.1f}% |")
    return "\n".join(lines)


def int8_only(args, out, measured):
    infos = {}
    for run_dir in args.runs:
        name = os.path.basename(os.path.normpath(run_dir))
        _, folder, _ = export(os.path.abspath(run_dir), out, INT8_ONLY, name)
        with open(os.path.join(folder, "export.json")) as f:
            infos[name] = json.load(f)
    text = int8_table(infos)
    print()
    print(text)
    intro = ("int8 LiteRT against float LiteRT, a row per run: validation accuracy, its drop, and "
             "file sizes, from each export's `export.json` (int8 calibrated on 300 training images "
             "without augmentation, float in and out). Goal (2 CPU cores): plant_cnn int8 within 0.5 "
             "point of float, its file <= 30% of the float file.")
    runs.save(args, "export_int8", "int8 LiteRT over seeds", intro + (
        "\n\nWritten by `python benchmarks/export_formats.py --int8-only RUN_DIR...`: a run replaces "
        "the rows it prints, keyed by the first column; `--no-write` only prints."),
        text, {"command": f"`{runs.script_command()}`", **measured})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--speed-examples", type=int, default=512)
    parser.add_argument("--out", default=None, help="Export folders go here (default: a temporary folder).")
    parser.add_argument("--int8-only", action="store_true",
                        help="Only float and int8 LiteRT, a row per run and their mean; no speed.")
    runs.add_no_write(parser)
    args = parser.parse_args()
    measured = runs.stamp()
    out = args.out or tempfile.mkdtemp(prefix="export_formats-")
    if args.int8_only:
        return int8_only(args, out, measured)
    results = {}
    for run_dir in args.runs:
        project, folder, _ = export(os.path.abspath(run_dir), out)
        results[project] = measure(project, os.path.abspath(run_dir), folder, args.rounds, args.speed_examples)
    text = table(results)
    print()
    print(text)
    print()
    print(runs.machine())
    runs.save_speed(args, "export_formats", "Exported formats", __doc__, text, measured)


if __name__ == "__main__":
    main()
