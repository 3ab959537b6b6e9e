"""The single source of colabmagic's version."""

__version__ = "0.1.0"
