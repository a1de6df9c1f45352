"""The plant_cnn project: config + data function + model factory for the shared CLI."""

from tf_finetune.project import Project
from tf_finetune.project import lazy

from projects.plant_cnn.config import PlantConfig

PROJECT = Project(
    name="plant_cnn",
    description="Image classification by transfer learning from ImageNet backbones "
    "(plant leaf diseases, flowers, any one-subfolder-per-class image folder).",
    config_class=PlantConfig,
    load_data=lazy("projects.plant_cnn.data:load_data"),
    build_model=lazy("projects.plant_cnn.model:build_model"),
    preprocess=lazy("projects.plant_cnn.data:preprocess"),
    read_inputs=lazy("projects.plant_cnn.data:read_inputs"),
    synthetic_inputs=lazy("projects.plant_cnn.data:synthetic_inputs"),
    backbone=lazy("projects.plant_cnn.model:pretrained_backbone"),
    blocks=lazy("projects.plant_cnn.model:pretrained_blocks"),
    tensor_model=lazy("projects.plant_cnn.model:tensor_model"),
)
