"""Full training runs on the real data (about 8 minutes for IMDB, 2 for SST-2, on 2 CPU cores).

Not in the default suite: run by hand with `python -m pytest -m slow`. Wall time is
measured by `benchmarks/sentiment_accuracy.py`, not asserted here.
"""

import json
import os

import pytest

from projects.sentiment_lstm.project import PROJECT
from tests.conftest import REPO
from tf_finetune.cli import main

CONFIGS = os.path.join(REPO, "projects", "sentiment_lstm", "configs")


def train(shared_data, run_dir, config, dataset, *extra):
    args = ["train", "--config", os.path.join(CONFIGS, config),
            "--data-dir", os.path.join(shared_data, dataset), "--output-dir", str(run_dir), *extra]
    assert main(PROJECT, args) == 0
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)["accuracy"]


@pytest.mark.slow
def test_imdb_then_sst2_reach_the_goals(shared_data, tmp_path):
    imdb = tmp_path / "imdb"
    assert train(shared_data, imdb, "imdb.toml", "imdb") >= 0.89
    # SST-2 dev, starting from the IMDB encoder.
    assert train(shared_data, tmp_path / "sst2", "sst2.toml", "sst2",
                 "--init-from", str(imdb), "--learning-rate", "0.001") >= 0.83
