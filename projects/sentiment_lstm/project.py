"""The sentiment_lstm project: config + data function + model factory for the shared CLI."""

from tf_finetune.data import text_data
from tf_finetune.project import Project
from tf_finetune.project import lazy

from projects.sentiment_lstm.config import SentimentConfig

PROJECT = Project(
    name="sentiment_lstm",
    description="Text classification with an LSTM over raw strings (IMDB, SST-2, any CSV/TSV "
    "of texts and labels); exports a SavedModel that serves raw UTF-8 text.",
    config_class=SentimentConfig,
    load_data=lazy("projects.sentiment_lstm.data:load_data"),
    build_model=lazy("projects.sentiment_lstm.model:build_model"),
    preprocess=text_data.preprocess,
    read_inputs=text_data.read_inputs,
    synthetic_inputs=text_data.synthetic_inputs,
    backbone=lazy("projects.sentiment_lstm.model:encoder"),
    tensor_model=lazy("projects.sentiment_lstm.model:tensor_model"),
    from_tables=lazy("projects.sentiment_lstm.data:make_data"),
)
