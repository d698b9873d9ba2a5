"""The top-level keys of a restoration recipe, in one place: :mod:`pnpdiff.config.restore` validates
a recipe against them, and the peer translators (:mod:`pnpdiff.config.peers`) refuse a peer config
that mixes them in. A new recipe key is added here and given its check in ``config/restore.py``."""

from __future__ import annotations

__all__ = ["TOP_KEYS"]

TOP_KEYS = (
    "task", "description", "image", "observed", "size", "resize", "operator", "noise", "prior",
    "method", "steps", "options", "seed", "device", "max_memory", "output", "batch_size", "save", "intermediates",
    "samples", "precision", "compile", "calibrate", "simulate",
)
