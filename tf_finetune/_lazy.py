"""Lazy public names for the subpackages (PEP 562), so that importing one stays cheap.

`from tf_finetune.training import Trainer` works as usual, but importing
`tf_finetune.training` itself (or one of its light modules, such as `schedules` names for a
config) does not load TensorFlow: each name's module is imported the first time the name is
used. The command line relies on this to print `--help` without starting TensorFlow.
"""

import importlib


def exports(package, names):
    """`(__getattr__, __dir__, __all__)` for `package` exporting `names`.

    Args:
        package: the package's `__name__`.
        names: `{public name: submodule}`; the name is read from `package.submodule`.
    """

    def __getattr__(name):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__, sorted(names)
