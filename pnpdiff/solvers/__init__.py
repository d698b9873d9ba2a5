"""Solvers: one function per method, each one loop over a decreasing sigma schedule.

``SOLVERS`` maps the names accepted by ``pnpdiff.solve(method=...)`` to the functions.
"""

from __future__ import annotations

from pnpdiff.solvers.common import clip_schedule, estimate_noise_level, initial_estimate
from pnpdiff.solvers.diffpir import diffpir

SOLVERS = {
    "diffpir": diffpir,
}

__all__ = ["SOLVERS", "diffpir", "clip_schedule", "initial_estimate", "estimate_noise_level"]
