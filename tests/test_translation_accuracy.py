"""The default translation model on all the Tatoeba pairs (about half an hour on 2 CPU cores:
26 minutes of training, then decoding the test sentences).

Not in the default suite: run by hand with `python -m pytest -m slow`. Wall time is measured
by `benchmarks/translation_accuracy.py`, not asserted here.
"""

import json
import os

import pytest

from projects.translation.project import PROJECT
from tf_finetune.cli import main


@pytest.mark.slow
def test_character_bleu_goal_with_the_default_settings(shared_data, tmp_path):
    args = ["train", "--data-dir", os.path.join(shared_data, "cmn_eng"),
            "--output-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "exports")]
    assert main(PROJECT, args) == 0
    with open(tmp_path / "run" / "metrics.json", encoding="utf-8") as f:
        assert json.load(f)["bleu"] >= 25.0
    assert os.listdir(tmp_path / "exports") == ["1"]
