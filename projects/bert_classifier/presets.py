"""Where a BERT preset comes from, and loading it with one clear line when that fails.

`--preset` accepts what keras-hub's `from_preset` accepts, resolved the way tf-finetune
resolves data:

1. a local folder: a keras-hub preset (`config.json` naming `BertBackbone`,
   `model.weights.h5`, `tokenizer.json`) or a Hugging Face BERT (`config.json` with
   `"model_type": "bert"`, `model.safetensors`, `vocab.txt`);
2. else a handle (`bert_tiny_en_uncased`, `kaggle://keras/bert/keras/bert_tiny_en_uncased/2`,
   `hf://sentence-transformers/all-MiniLM-L6-v2`) whose name is a folder under
   `$TF_FINETUNE_DATA/weights/` (e.g. `weights/all-MiniLM-L6-v2/`);
3. else the handle itself, downloaded by keras-hub when online.
"""

import json
import os

from tf_finetune.data import locate
from tf_finetune.errors import UserError

LOCAL_FORMS = (
    "a keras-hub preset folder (config.json, model.weights.h5, tokenizer.json) or a Hugging "
    "Face BERT folder (config.json, model.safetensors, vocab.txt)"
)
FORMS = (
    f"{LOCAL_FORMS}, or a keras-hub handle such as bert_tiny_en_uncased or "
    "hf://sentence-transformers/all-MiniLM-L6-v2 (online)"
)
KERAS_FILES = ("model.weights.h5", "tokenizer.json")
HF_FILES = ("model.safetensors", "vocab.txt")


def resolve_preset(preset):
    """A checked local preset folder, or a handle for keras-hub to download."""
    preset = str(preset).strip()
    if not preset:
        raise UserError(f"--preset is empty: pass {FORMS}.")
    if _is_path(preset):
        path = os.path.abspath(os.path.expanduser(preset))
        if not os.path.isdir(path):
            raise UserError(f"--preset {path} is not a folder: pass {FORMS}.")
        check_folder(path)
        return path
    name = handle_name(preset)
    root = locate.data_root()
    if root and os.path.isdir(os.path.join(root, "weights", name)):
        path = os.path.join(root, "weights", name)
        check_folder(path)
        return path
    if locate.is_online():
        return preset
    where = (f"${locate.DATA_ENV}={root} has no weights/{name}/" if root
             else f"set {locate.DATA_ENV} to a folder holding weights/{name}/")
    raise UserError(
        f"--preset {preset} is not on this machine and it is offline: pass --preset DIR "
        f"({LOCAL_FORMS}), {where}, or go online so keras-hub can download it."
    )


def handle_name(preset):
    """The model name in a handle: `kaggle://keras/bert/keras/bert_tiny_en_uncased/2` ->
    `bert_tiny_en_uncased`, `hf://org/name` -> `name`."""
    parts = [p for p in preset.split("://")[-1].split("/") if p]
    while len(parts) > 1 and parts[-1].isdigit():  # a Kaggle version number
        parts.pop()
    return parts[-1] if parts else preset


def check_folder(path):
    """Fails with one line unless `path` is a keras-hub or Hugging Face BERT preset."""
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise UserError(f"--preset {path} has no config.json: pass {FORMS}.")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"--preset {config_path} is not valid JSON ({e}): pass {FORMS}.") from None
    if not isinstance(config, dict):
        raise UserError(f"--preset {config_path} does not hold a model config: pass {FORMS}.")
    if "registered_name" in config:
        kind, required = config.get("registered_name"), KERAS_FILES
        is_bert = kind == "keras_hub>BertBackbone"
    elif "model_type" in config:
        kind, required = config.get("model_type"), HF_FILES
        is_bert = kind == "bert"
    else:
        raise UserError(
            f"--preset {config_path} is neither a keras-hub nor a Hugging Face config "
            f"(no registered_name or model_type): pass {FORMS}."
        )
    if not is_bert:
        raise UserError(f"--preset {path} holds a {kind!r} model, not BERT: pass {FORMS}.")
    missing = [name for name in required if not os.path.isfile(os.path.join(path, name))]
    if missing:
        raise UserError(f"--preset {path} lacks {', '.join(missing)}: pass {FORMS}.")


def load(preset):
    """`(keras_hub.models.BertBackbone, keras_hub.models.BertTokenizer)` of a resolved preset."""
    import keras_hub

    try:
        backbone = keras_hub.models.BertBackbone.from_preset(preset)
        tokenizer = keras_hub.models.BertTokenizer.from_preset(preset)
    except Exception as e:  # third-party loaders: corrupt weights, unknown handles, ...
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(
            f"--preset {preset} could not be loaded ({type(e).__name__}: {first_line[:200]}): pass {FORMS}."
        ) from None
    return backbone, tokenizer


def _is_path(preset):
    return (
        "://" not in preset
        and (os.path.exists(os.path.expanduser(preset)) or preset.startswith((".", "/", "~"))
             or os.sep in preset)
    )
