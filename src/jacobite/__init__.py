"""jacobite: the Jacobian toolkit for PyTorch."""

from . import config, errors

__version__ = "0.1.0"

__all__ = ["__version__", "config", "errors"]
