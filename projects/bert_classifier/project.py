"""The bert_classifier project: config + data function + model factory for the shared CLI."""

from tf_finetune import text_data
from tf_finetune.project import Project

from projects.bert_classifier import data
from projects.bert_classifier.config import BertConfig
from projects.bert_classifier.model import build_model

PROJECT = Project(
    name="bert_classifier",
    description="Fine-tune a pretrained BERT (keras-hub) on text classification (SST-2, IMDB, "
    "any CSV/TSV of texts and labels); exports a SavedModel that serves raw UTF-8 text.",
    config_class=BertConfig,
    load_data=data.load_data,
    build_model=build_model,
    preprocess=text_data.preprocess,
    read_inputs=text_data.read_inputs,
    synthetic_inputs=text_data.synthetic_inputs,
)
