"""The sentiment_lstm project: config + data function + model factory for the shared CLI."""

from tf_finetune import text_data
from tf_finetune.project import Project

from projects.sentiment_lstm import data
from projects.sentiment_lstm.config import SentimentConfig
from projects.sentiment_lstm.model import build_model

PROJECT = Project(
    name="sentiment_lstm",
    description="Text classification with an LSTM over raw strings (IMDB, SST-2, any CSV/TSV "
    "of texts and labels); exports a SavedModel that serves raw UTF-8 text.",
    config_class=SentimentConfig,
    load_data=data.load_data,
    build_model=build_model,
    preprocess=text_data.preprocess,
    read_inputs=text_data.read_inputs,
    synthetic_inputs=text_data.synthetic_inputs,
)
