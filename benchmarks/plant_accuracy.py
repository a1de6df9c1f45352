"""Accuracy and training wall time of plant_cnn on the real data, as a markdown table.

Each row is one `python -m projects.plant_cnn train --config ...` run; the table reads the
run's metrics.json. Goals (2 CPU cores): PlantVillage >= 98.5% validation accuracy with
training <= 20 minutes; flowers >= 92%; seed_cnn is the from-scratch baseline. Validation
split: 20% of each class (seed 42). Train time is the wall time of `Trainer.fit` (both phases,
with a validation pass every epoch).

    python benchmarks/plant_accuracy.py                      # all rows
    python benchmarks/plant_accuracy.py --rows plantvillage  # some rows
    python benchmarks/plant_accuracy.py --table-only RUN...  # re-print from finished runs
"""

import os

import runs

CONFIGS = os.path.join("projects", "plant_cnn", "configs")
ROWS = {name: ["--config", os.path.join(CONFIGS, f"{name}.toml")] for name in ("plantvillage", "flowers", "seed_cnn")}
# Plans of stages against today's configs, each scored on a held-out test split (20% of each
# class, drawn by the seed) that no choice is made on: the kept epoch is chosen on validation.
TEST = ["--test-split", "0.2"]
for name in ("plantvillage", "flowers"):
    ROWS[f"{name}_test"] = [*ROWS[name], *TEST]
    ROWS[f"{name}_plan"] = ["--config", os.path.join(CONFIGS, f"{name}_plan.toml"), *TEST]
# flowers.toml with MixUp (Beta(0.2, 0.2)) or CutMix (Beta(1, 1)), one of the two per batch.
ROWS["flowers_mix"] = [*ROWS["flowers_test"], "--mixup", "0.2", "--cutmix", "1.0"]
ROWS["flowers_mixup"] = [*ROWS["flowers_test"], "--mixup", "0.2"]  # MixUp alone
ROWS["plantvillage_plan_mixup"] = [*ROWS["plantvillage_plan"], "--mixup", "0.2"]
# PlantVillage's healthy potato class has 129 photos, the others 234-425.
ROWS["plantvillage_plan_balanced"] = [*ROWS["plantvillage_plan"], "--class-weight", "balanced"]
# Average and max pooling side by side (fastai's concat pooling): a small lesion moves the max.
ROWS["plantvillage_plan_avgmax"] = [*ROWS["plantvillage_plan"], "--pooling", "avgmax"]


def test_columns(metrics):
    test = metrics.get("test")
    return f"{test['num_examples']} | {100 * test['accuracy']:.2f}%" if test else "- | -"


def table(run_dirs):
    lines = [
        "| run | dataset | backbone | image px | val images | val accuracy | macro F1 | test images | "
        "test accuracy | train time | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run_dir in run_dirs:
        name, m, c, r = runs.read_run(run_dir)
        size = c["image_size"] or (150 if c["backbone"] == "seed_cnn" else 224)
        lines.append(
            f"| {name} | {c['dataset']} | {c['backbone']} | {size} | {m['num_examples']} | "
            f"{100 * m['accuracy']:.2f}% | {m['macro_f1']:.4f} | {test_columns(m)} | "
            f"{m['train_seconds'] / 60:.1f} min | "
            f"`{runs.train_args(r)}` |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    runs.main(__doc__, "plant_cnn", ROWS, table, title="plant_cnn accuracy")
