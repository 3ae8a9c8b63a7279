"""Import TensorFlow lazily and quietly (it costs ~10 s; only stages that need it pay)."""

from __future__ import annotations

import os


def import_tensorflow():
    """The ``tensorflow`` module, with its C++ info/warning logs silenced (errors still show)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow

    return tensorflow
