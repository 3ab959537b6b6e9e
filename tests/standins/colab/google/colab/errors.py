"""Stand-in for ``google.colab.errors`` (colabtools google/colab/errors.py at 3c07d77, 2026-04): the base class."""


class Error(Exception):
    """Base class for all Colab errors."""
