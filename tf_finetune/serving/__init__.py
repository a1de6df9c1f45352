"""Serving: exports verified against Keras before they are published.

- `saved_model`: TF Serving's raw-input SavedModel (`EXPORT_DIR/<version>/`).
- `exporter`: several formats into one version folder (SavedModel, LiteRT, ONNX), each checked
  on the validation set; `export.json` and the model card (`model_card`).
- `litert`, `onnx`: the conversions; `tensor_model`: the model as tensors in, probabilities out.
- `client`: the standalone client copied into export folders (numpy + the runtime only).
- `versions`: numbered versions, reserved and published atomically.
"""

from tf_finetune._lazy import exports

__getattr__, __dir__, __all__ = exports(__name__, {
    "export_classifier": "saved_model",
    "export_serving": "saved_model",
    "classifier_serving": "saved_model",
    "load_saved_model": "saved_model",
    "find_saved_model": "saved_model",
    "serve_saved_model": "saved_model",
    "export": "exporter",
    "ExportRequest": "exporter",
    "TensorModel": "tensor_model",
    "Client": "client",
    "load_runner": "client",
    "find_export": "versions",
})
