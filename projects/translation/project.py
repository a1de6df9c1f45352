"""The translation project: config + data function + model factory + task for the shared CLI.

The translator trains from scratch in one phase, so the project names no backbone.
"""

from tf_finetune.data import text_data
from tf_finetune.project import Project
from tf_finetune.project import lazy

from projects.translation.config import TranslationConfig
from projects.translation.task import TranslationTask


def synthetic_inputs(config):
    """Fixed sentences, to verify an export when the run's examples are not available."""
    return ["I love you.", "Tom is reading a book in the garden.", "Where is the station?", ""]


PROJECT = Project(
    name="translation",
    description="English to Chinese translation (Tatoeba pairs): a Transformer or the seed's "
    "LSTM encoder-decoder, BLEU on held-out sentences; exports a SavedModel that translates "
    "raw English strings.",
    config_class=TranslationConfig,
    load_data=lazy("projects.translation.data:load_data"),
    build_model=lazy("projects.translation.model:build_model"),
    preprocess=text_data.preprocess,  # the model reads raw English itself
    read_inputs=text_data.read_inputs,
    synthetic_inputs=synthetic_inputs,
    task=TranslationTask(),
)
