"""plant_cnn trained by two worker processes on 127.0.0.1 (TF_CONFIG, MultiWorkerMirroredStrategy).

Both workers run the same command, as on a real cluster. The chief (worker 0) writes the run
directory and the export; worker 1 does the same work into a temporary folder it removes. The
result is compared with one process training on the same global batches. Slow (two trainings
of 336 images); the default suite runs two workers on a small model in test_distributed.py.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, free_ports, require_data, shared_data_dir


@pytest.fixture(scope="module", autouse=True)
def _needs_plantvillage():
    """Skips (fails in CI) every test here without the real PlantVillage images."""
    require_data("plantvillage")


def command(out, *extra):
    data = os.path.join(shared_data_dir(), "plantvillage")
    return [sys.executable, "-m", "projects.plant_cnn", "train", "--smoke", "--data-dir", data,
            "--output-dir", str(out / "run"), "--export-dir", str(out / "exports"), "--seed", "3", *extra]


def train_on_two_workers(out, *extra):
    """Runs the command on worker 0 and 1 at once; returns their exit codes and (stdout, stderr)."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(command(out, *extra), cwd=REPO, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=900))
    finally:
        for process in processes:
            process.kill()
    codes = [p.returncode for p in processes]
    assert codes == [0, 0], [err[-2000:] for _, err in outputs]
    return outputs


def accuracy(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)["accuracy"]


@pytest.mark.slow  # about 3 min on 2 cores; tests/test_distributed.py runs two workers by default
def test_two_workers_finish_only_the_chief_writes_and_match_one_process(tmp_path):
    # 168 validation images (half of 48 per class), so 1% is more than one image. Without
    # dropout: its masks are drawn per replica, so two replicas of 8 draw other masks than
    # one of 16.
    extra = ("--max-examples-per-class", "48", "--validation-split", "0.5", "--dropout", "0")
    subprocess.run(command(tmp_path / "single", *extra), cwd=REPO, check=True, capture_output=True,
                   timeout=900)
    multi = tmp_path / "multi"
    outputs = train_on_two_workers(multi, *extra)

    with open(multi / "run" / "run.json") as f:
        assert json.load(f)["strategy"] == "MultiWorkerMirroredStrategy with 2 replicas"
    assert os.listdir(multi / "exports") == ["1"]  # one version: worker 1 exported elsewhere
    with open(multi / "run" / "history.csv") as f:
        assert len(f.read().splitlines()) == 1 + 4  # one header, 3 head + 1 fine-tuning epochs
    assert os.path.isfile(multi / "run" / "checkpoints" / "best.keras")
    assert not os.path.exists(multi / "run" / "backup")
    # Worker 1 wrote into a temporary folder of its own, and removed it.
    worker_dir = next(line.split(": ", 1)[1] for line in outputs[1][0].splitlines()
                      if line.startswith("Run directory: "))
    assert not worker_dir.startswith(str(tmp_path)) and not os.path.exists(worker_dir)

    assert abs(accuracy(multi / "run") - accuracy(tmp_path / "single" / "run")) <= 0.01
