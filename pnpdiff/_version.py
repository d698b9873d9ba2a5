"""The version of pnpdiff, in one place (every module reads it from here, never from the facade)."""

__version__ = "0.1.0"
