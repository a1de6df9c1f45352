"""Serving: exports that take raw inputs, verified against Keras before they are published.

- `saved_model`: TF Serving layout (`EXPORT_DIR/<version>/`), written to a temporary folder,
  reloaded and compared with the Keras model, then renamed.
"""

from tf_finetune._lazy import exports

__getattr__, __dir__, __all__ = exports(__name__, {
    "export_classifier": "saved_model",
    "export_serving": "saved_model",
    "classifier_serving": "saved_model",
    "load_saved_model": "saved_model",
    "find_saved_model": "saved_model",
    "serve_saved_model": "saved_model",
})
