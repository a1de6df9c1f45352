"""The plant_cnn project: config + data function + model factory for the shared CLI."""

from tf_finetune.project import Project

from projects.plant_cnn import data
from projects.plant_cnn.config import PlantConfig
from projects.plant_cnn.model import build_model


def _build_model(config, data):
    return build_model(config, data.class_names)


PROJECT = Project(
    name="plant_cnn",
    description="Image classification by transfer learning from ImageNet backbones "
    "(plant leaf diseases, flowers, any one-subfolder-per-class image folder).",
    config_class=PlantConfig,
    load_data=data.load_data,
    build_model=_build_model,
    preprocess=data.preprocess,
    read_inputs=data.read_inputs,
    synthetic_inputs=data.synthetic_inputs,
)
