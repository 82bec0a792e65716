"""The package's version, in a leaf module: modules inside the package import it from here, never
from the package top (``tests/unit/test_imports.py``). Keep it equal to ``pyproject.toml``'s."""

__version__ = "0.1.0"
