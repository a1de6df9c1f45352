"""Executes every notebook top to bottom; any cell error fails the suite."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs(path, shared_data, monkeypatch):
    monkeypatch.setenv("TF_FINETUNE_DATA", shared_data)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    with open(path, encoding="utf-8") as f:
        notebook = nbformat.read(f, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit notebooks without outputs"
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(path)}}).execute()
