"""LiteRT (formerly TensorFlow Lite) conversion: float, float16, dynamic-range and int8.

Conversion is Keras's own `model.export(format="litert")` (an ExportArchive, then
`TFLiteConverter.from_saved_model`) with the converter settings of each quantization:

| `quantize` | converter settings | weights | activations |
|---|---|---|---|
| `none` | - | float32 | float32 |
| `float16` | `Optimize.DEFAULT`, `supported_types=[float16]` | float16 | float32 |
| `dynamic` | `Optimize.DEFAULT` | int8 | float32 (int8 kernels where the op has them) |
| `int8` | `Optimize.DEFAULT`, a representative dataset, `TFLITE_BUILTINS_INT8` | int8 | int8 |

Only LiteRT's built-in ops are allowed (Keras's default also admits "select TF ops", which the
`ai_edge_litert` interpreter cannot run). A model whose ops need a fixed batch (recurrent
layers lower to tensor lists with static shapes) is converted for batch 1, and the client
sends examples one at a time.
"""

import logging
import os
import tempfile

logger = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


def file_name(quantize):
    """`model.tflite` for float, `model_<quantize>.tflite` for the others."""
    return "model.tflite" if quantize == "none" else f"model_{quantize}.tflite"


def converter_settings(quantize, *, calibration=None, int8_io=False):
    """The `TFLiteConverter` attributes for `quantize` (see the module docstring).

    Args:
        calibration: for int8, a function returning an iterator of input lists (batch 1
            each), the representative dataset.
        int8_io: for int8, also make the inputs and outputs int8 (else float, with the
            quantize/dequantize inside the model).
    """
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantization; expected one of {QUANTIZATIONS}. Received: {quantize!r}")
    settings = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    if quantize == "float16":
        settings["optimizations"] = [tf.lite.Optimize.DEFAULT]
        settings["target_spec"]["supported_types"] = [tf.float16]
    elif quantize == "dynamic":
        settings["optimizations"] = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        if calibration is None:
            raise ValueError("int8 quantization needs calibration examples (a representative dataset).")
        settings["optimizations"] = [tf.lite.Optimize.DEFAULT]
        settings["representative_dataset"] = calibration
        settings["target_spec"]["supported_ops"] = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            settings["inference_input_type"] = tf.int8
            settings["inference_output_type"] = tf.int8
    return settings


def convert(tensor_model, quantize="none", *, calibration=None, int8_io=False):
    """`(tflite bytes, batch)`: `tensor_model` (a `serving.tensor_model.TensorModel`) as LiteRT.

    `batch` is None when the artifact takes any batch size, 1 when it had to be fixed.
    """
    settings = converter_settings(quantize, calibration=calibration, int8_io=int8_io)
    try:  # its converter's complaints are expected when the batch must be fixed: not shown
        return _convert(tensor_model, settings, batch=None, show_errors=False), None
    except Exception as e:  # noqa: BLE001 (the converter raises several types)
        if not _needs_fixed_batch(e):
            raise
    logger.info("LiteRT: this model converts to built-in ops only with a fixed batch of 1 (its recurrent "
                "layers need static shapes); clients send one example at a time.")
    return _convert(tensor_model, settings, batch=1), 1


def _needs_fixed_batch(error):
    text = str(error)
    return "static" in text or "TensorList" in text or "dynamic" in text


def _convert(tensor_model, settings, batch, show_errors=True):
    from tf_finetune.cli.tensorflow_logs import quiet_native_output

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        with quiet_native_output(show_on_error=show_errors):
            tensor_model.model.export(path, format="litert", input_signature=tensor_model.signature(batch),
                                      verbose=False, **settings)
        with open(path, "rb") as f:
            return f.read()
