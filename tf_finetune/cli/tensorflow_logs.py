"""Loading TensorFlow for a command, without its start-up chatter.

TensorFlow 2.21 prints six lines while it loads (oneDNN and CUDA notes, "All log messages
before absl::InitializeLog() is called are written to STDERR"), and those lines ignore
`TF_CPP_MIN_LOG_LEVEL`: absl writes them before any log level is set
(abseil/abseil-cpp#1718). So the CLI loads TensorFlow only when a command needs it, with the
process's stderr pointed at a temporary file; what was caught is shown only if the import
fails. `--verbose`, or a `TF_CPP_MIN_LOG_LEVEL=0` of the user's, shows everything instead.
"""

import contextlib
import os
import sys
import tempfile


def wants_tensorflow_logs(verbose=False):
    """Whether TensorFlow's C++ start-up and INFO lines should be shown."""
    return verbose or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0"


def load_tensorflow(verbose=False):
    """Imports TensorFlow and Keras (once per process), quietly unless logs are wanted."""
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    if wants_tensorflow_logs(verbose):
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        return
    # Errors only, for the rest of the run (CUDA probing on CPU machines logs at ERROR).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_native_output():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def quiet_native_output(show_on_error=True):
    """Catches what C++ code writes to stderr (file descriptor 2) inside the block, e.g. the
    LiteRT converter's notes; it is shown only if the block raises (and `show_on_error`), or
    when logs are wanted."""
    if wants_tensorflow_logs():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            if show_on_error:
                caught.seek(0)
                sys.stderr.write(caught.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
