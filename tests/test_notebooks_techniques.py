"""Executes the technique notebooks top to bottom (the project notebooks: test_notebooks.py)."""

import os

import pytest

from tests.conftest import REPO
from tests.test_notebooks import TECHNIQUES
from tests.test_notebooks import run_notebook


@pytest.mark.parametrize("name", TECHNIQUES)
def test_notebook_runs(name, shared_data, monkeypatch, tmp_path):
    run_notebook(os.path.join(REPO, "notebooks", name), shared_data, monkeypatch, tmp_path)
