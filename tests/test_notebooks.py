"""Executes every project notebook top to bottom; any cell error fails the suite."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

# The technique notebooks run in tests/test_notebooks_techniques.py: another file, so that
# pytest-xdist (--dist loadfile) can give the two halves to two workers.
TECHNIQUES = ("distillation_and_pruning.ipynb", "fine_tuning_plans.ipynb", "hyperparameter_search.ipynb")
NOTEBOOKS = sorted(p for p in glob.glob(os.path.join(REPO, "notebooks", "*.ipynb"))
                   if os.path.basename(p) not in TECHNIQUES)


def run_notebook(path, shared_data, monkeypatch, tmp_path):
    """Executes the notebook at `path` top to bottom (it must be committed without outputs).

    The kernel's temporary folder is `tmp_path`: a notebook's working folder
    (`tempfile.mkdtemp`) is then pytest's to clean up, not left in /tmp after every run."""
    monkeypatch.setenv("TF_FINETUNE_DATA", shared_data)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    with open(path, encoding="utf-8") as f:
        notebook = nbformat.read(f, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit notebooks without outputs"
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(path)}}).execute()


def test_every_notebook_is_run_by_one_of_the_two_files():
    every = {os.path.basename(p) for p in glob.glob(os.path.join(REPO, "notebooks", "*.ipynb"))}
    assert every == {os.path.basename(p) for p in NOTEBOOKS} | set(TECHNIQUES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs(path, shared_data, monkeypatch, tmp_path):
    run_notebook(path, shared_data, monkeypatch, tmp_path)
