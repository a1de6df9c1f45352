"""The bert_classifier project: config + data function + model factory for the shared CLI.

By default BERT trains in one stage (`--freeze-layers` chooses what learns); its transformer
layers and pooler are the blocks a plan of stages unfreezes or adapts with LoRA.
"""

from tf_finetune.data import text_data
from tf_finetune.project import Project
from tf_finetune.project import lazy

from projects.bert_classifier.config import BertConfig

PROJECT = Project(
    name="bert_classifier",
    description="Fine-tune a pretrained BERT (keras-hub) on text classification (SST-2, IMDB, "
    "any CSV/TSV of texts and labels); exports a SavedModel that serves raw UTF-8 text.",
    config_class=BertConfig,
    load_data=lazy("projects.bert_classifier.data:load_data"),
    build_model=lazy("projects.bert_classifier.model:build_model"),
    preprocess=text_data.preprocess,
    read_inputs=text_data.read_inputs,
    synthetic_inputs=text_data.synthetic_inputs,
    blocks=lazy("projects.bert_classifier.model:pretrained_blocks"),
    tensor_model=lazy("projects.bert_classifier.model:tensor_model"),
    from_tables=lazy("projects.bert_classifier.data:make_data"),
)
