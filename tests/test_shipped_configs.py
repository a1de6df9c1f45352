"""Every config and search space shipped in `projects/*/configs/` loads and expands as documented."""

import glob
import importlib
import os

import keras
import pytest

from tf_finetune import config as config_lib
from tf_finetune.models import pruning
from tf_finetune.search import space
from tf_finetune.training import stages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(glob.glob(os.path.join(REPO, "projects", "*", "configs", "*.toml")))


def project_of(path):
    name = os.path.basename(os.path.dirname(os.path.dirname(path)))
    return importlib.import_module(f"projects.{name}.project").PROJECT


def test_configs_are_found():
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, os.path.join(REPO, "projects")))
def test_shipped_file_loads(path):
    config_class = project_of(path).config_class
    if path.endswith("_space.toml"):
        assert space.read_space(path, config_class)
        return
    config = config_lib.build_config(config_class, file=path)
    plan = stages.expand(config, num_blocks=12)
    assert plan and all(stage.epochs >= 1 for stage in plan)


def test_mobilenet_prune_config_prunes_the_pointwise_kernels_only():
    """plantvillage_mobilenet_prune.toml's comment: prune_min_params = 7000 takes the pointwise
    kernels of blocks 3-13 of MobileNet 0.75 (95% of its weights) and no depthwise kernel."""
    path = os.path.join(REPO, "projects", "plant_cnn", "configs", "plantvillage_mobilenet_prune.toml")
    config = config_lib.build_config(project_of(path).config_class, file=path)
    (stage,) = [s for s in stages.expand(config, num_blocks=14) if s.prune_sparsity > 0]
    assert stage.prune_sparsity == 0.8 and config.backbone == "mobilenet"

    model = keras.applications.MobileNet(input_shape=(224, 224, 3), alpha=0.75, include_top=False, weights=None)
    chosen = pruning.prunable_kernels(model, stage.prune_layers, stage.prune_min_params)
    assert [k.layer.name for k in chosen] == [f"conv_pw_{i}" for i in range(3, 14)]
    total = sum(int(w.numpy().size) for w in model.trainable_weights)
    assert sum(k.size for k in chosen) / total > 0.95
