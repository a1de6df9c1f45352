"""Full training runs on the real data (10-20 minutes each on 2 CPU cores).

Not in the default suite: run by hand with `python -m pytest -m slow`. Wall time is
measured by `benchmarks/plant_accuracy.py`, not asserted here.
"""

import json
import os

import pytest

from projects.plant_cnn.project import PROJECT
from tests.conftest import REPO
from tf_finetune.cli import main

CONFIGS = os.path.join(REPO, "projects", "plant_cnn", "configs")


@pytest.mark.slow
@pytest.mark.parametrize("config, dataset, goal", [
    ("plantvillage.toml", "plantvillage", 0.985),
    ("flowers.toml", "flowers", 0.92),
])
def test_fine_tuning_reaches_the_goal(shared_data, tmp_path, config, dataset, goal):
    run_dir = str(tmp_path / "run")
    assert main(PROJECT, ["train", "--config", os.path.join(CONFIGS, config),
                          "--data-dir", os.path.join(shared_data, dataset), "--output-dir", run_dir]) == 0
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert json.load(f)["accuracy"] >= goal
