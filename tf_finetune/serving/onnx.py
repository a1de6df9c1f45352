"""ONNX conversion, for ONNX Runtime and the servers built on it.

Keras's own `model.export(format="onnx")` (tf2onnx under the TensorFlow backend) on the
`TensorModel`: the artifact takes the pre-processed tensors, any batch size, and returns the
class probabilities. Float only; ONNX Runtime's own quantization tools work on the file.
"""

import logging
import os
import tempfile

FILE = "model.onnx"


def convert(tensor_model):
    """The ONNX bytes of `tensor_model` (a `serving.tensor_model.TensorModel`)."""
    from tf_finetune.cli.tensorflow_logs import quiet_native_output

    quiet = logging.getLogger("tf2onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp, quiet_native_output():
            path = os.path.join(tmp, FILE)
            tensor_model.model.export(path, format="onnx", input_signature=tensor_model.signature(), verbose=False)
            with open(path, "rb") as f:
                return f.read()
    finally:
        quiet.setLevel(level)
