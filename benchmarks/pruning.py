"""Magnitude pruning of plant_cnn against the dense runs: accuracy, sparsity, sizes, as a markdown table.

Each row is one `python -m projects.plant_cnn train --config ...` run, then one `export` of its
kept model with `--format saved_model litert --quantize none int8` into a fresh folder beside
the run (`--max-accuracy-drop 100`: the int8 file is measured, not gated). The pruned rows are
`configs/plantvillage.toml` and `configs/seed_cnn.toml` followed by a pruning stage
(`plantvillage_prune.toml`: 80%; `seed_cnn_prune.toml`: 90%), and `plantvillage_plan.toml` on
MobileNet 0.75 (`--backbone mobilenet`) followed by one (`plantvillage_mobilenet_prune.toml`:
80%). Columns: validation accuracy of the Keras model; the pruned kernels' sparsity as
`export.json` records it (the share of zeros in the kernels the run pruned); the share of zeros
in all of the model's Dense and convolution kernels, measured on the kept model, dense rows
included; the SavedModel's size and gzip size (a tar of its files, as `gzip` compresses), the
float LiteRT file's gzip size, the int8 LiteRT file's size, gzip size and validation accuracy,
as `export.json` records them; and the training wall time (`Trainer.fit`, validation every
epoch).

Goals (2 CPU cores): at 80% sparsity, PlantVillage within 1 point of the dense run's validation
accuracy and its SavedModel gzip at most half the dense one's; seed_cnn (19M weights) at 90%
within 1 point of its dense run; the int8 file keeps the zeros (its gzip size drops by about
as much as the float file's).

    python benchmarks/pruning.py                                             # all rows (seed_cnn: 35+ min each)
    python benchmarks/pruning.py --rows plantvillage_dense plantvillage_prune80 --out /tmp/bench
    python benchmarks/pruning.py --table-only RUN...                         # re-print from finished runs
"""

import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # projects

import runs  # noqa: E402

CONFIGS = os.path.join("projects", "plant_cnn", "configs")
ROWS = {
    "plantvillage_dense": ["--config", os.path.join(CONFIGS, "plantvillage.toml")],
    "plantvillage_prune80": ["--config", os.path.join(CONFIGS, "plantvillage_prune.toml")],
    "plantvillage_mobilenet_dense": ["--config", os.path.join(CONFIGS, "plantvillage_plan.toml"), "--backbone", "mobilenet"],
    "plantvillage_mobilenet_prune80": ["--config", os.path.join(CONFIGS, "plantvillage_mobilenet_prune.toml")],
    "seed_cnn_dense": ["--config", os.path.join(CONFIGS, "seed_cnn.toml")],
    "seed_cnn_prune90": ["--config", os.path.join(CONFIGS, "seed_cnn_prune.toml")],
}
EXPORT = ["--format", "saved_model", "litert", "--quantize", "none", "int8", "--max-accuracy-drop", "100"]


def export(run_dir):
    """Exports the run into `<run_dir>_export/1` (made afresh); returns its export.json."""
    export_dir = f"{run_dir.rstrip(os.sep)}_export"
    shutil.rmtree(export_dir, ignore_errors=True)
    command = [sys.executable, "-m", "projects.plant_cnn", "export", "--run-dir", run_dir, "--export-dir", export_dir,
               *EXPORT]
    print("==", " ".join(command[1:]), flush=True)
    env = dict(os.environ, TF_FINETUNE_DATA=os.path.abspath(runs.DEFAULT_DATA))
    subprocess.run(command, cwd=runs.REPO, env=env, check=True)
    with open(os.path.join(export_dir, "1", "export.json")) as f:
        return json.load(f)


def kernel_zeros(run_dir):
    """The share of zeros in all of the kept model's Dense and convolution kernels."""
    from projects.plant_cnn.project import PROJECT
    from tf_finetune.models import pruning
    from tf_finetune.run_dir import load_run

    PROJECT.import_model_code()
    _, _, model = load_run(run_dir, PROJECT.name, PROJECT.config_class)
    return pruning.sparsity_report(model, min_params=0)["sparsity"]


def megabytes(n):
    return f"{n / 1e6:.2f} MB"


def table(run_dirs):
    lines = [
        "| run | val images | val accuracy | pruned kernels' sparsity | zeros in all kernels | SavedModel | "
        "SavedModel gzip | LiteRT float gzip | int8 LiteRT | int8 gzip | int8 accuracy | train time | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run_dir in run_dirs:
        name, m, _, r = runs.read_run(run_dir)
        info = export(run_dir)
        formats = info["formats"]
        saved, floating, int8 = formats["saved_model"], formats["model.tflite"], formats["model_int8.tflite"]
        pruned = f"{100 * info['pruning']['sparsity']:.1f}%" if "pruning" in info else "-"
        lines.append(
            f"| {name} | {m['num_examples']} | {100 * m['accuracy']:.2f}% | {pruned} | "
            f"{100 * kernel_zeros(run_dir):.1f}% | "
            f"{megabytes(saved['bytes'])} | {megabytes(saved['gzip_bytes'])} | {megabytes(floating['gzip_bytes'])} | "
            f"{megabytes(int8['bytes'])} | {megabytes(int8['gzip_bytes'])} | {100 * int8['accuracy']:.2f}% | "
            f"{m['train_seconds'] / 60:.1f} min | `{runs.train_args(r)}` |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    runs.main(__doc__, "plant_cnn", ROWS, table, title="Magnitude pruning (plant_cnn)", results="pruning")
