"""whiteboxdl: white-box deep learning for PyTorch.

Excitation pullbacks explain trained ReLU networks; semantic-feature networks are interpretable
and robust by construction.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
