"""The part of a model that LiteRT and ONNX can carry: tensors in, probabilities out.

A SavedModel holds the whole raw-input graph (JPEG decoding, string tokenization). LiteRT's
built-in ops and ONNX have neither, so those artifacts take the tensors that pre-processing
makes (pixels, token ids), and the export folder documents that pre-processing
(`preprocessing.json`, plus e.g. `vocabulary.txt`) for the standalone `client.py`.

A project says how its model splits with `Project.tensor_model(model, config)`, returning a
`TensorModel`; `same_inputs` is the split of a model that takes tensors already.
"""

import dataclasses
import typing

import numpy as np


@dataclasses.dataclass
class TensorModel:
    """A classifier on tensors, and how to get its inputs.

    Attributes:
        model: a Keras model taking the list of `inputs` (one tensor: that tensor) and
            returning class probabilities.
        inputs: `[{"name", "shape", "dtype"}]`, in order; shapes start with the batch (None).
        to_tensors: `(batch of the full model's inputs) -> list of numpy arrays` matching
            `inputs`: images pass through; texts are tokenized, padded to a fixed length.
        preprocessing: the documented pre-processing from raw inputs to `inputs` (a
            `"kind"` the client implements, and its settings), written to preprocessing.json.
        assets: extra files of the export folder that the pre-processing reads
            ({file name: text}, e.g. the vocabulary).
    """

    model: typing.Any
    inputs: list
    to_tensors: typing.Callable
    preprocessing: dict
    assets: dict = dataclasses.field(default_factory=dict)

    def signature(self, batch=None):
        """The `input_signature` for `keras.Model.export`, with the batch dimension `batch`."""
        import tensorflow as tf

        specs = [tf.TensorSpec([batch, *spec["shape"][1:]], spec["dtype"], name=spec["name"])
                 for spec in self.inputs]
        return specs if len(specs) == 1 else [specs]

    def spec(self):
        """What preprocessing.json holds."""
        return {"inputs": self.inputs, "labels": "labels.txt", "preprocessing": self.preprocessing}


def same_inputs(model, preprocessing):
    """The `TensorModel` of a single-input model that takes tensors already (e.g. pixels)."""
    (tensor,) = model.inputs
    inputs = [{"name": tensor.name, "shape": list(tensor.shape), "dtype": str(tensor.dtype)}]
    return TensorModel(model, inputs, lambda x: [np.asarray(x)], preprocessing)
