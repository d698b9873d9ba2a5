"""Solvers: one function per method, each one loop over a decreasing sigma schedule.

``SOLVERS`` maps the names accepted by ``pnpdiff.solve(method=...)`` to the functions.
"""

from __future__ import annotations

from pnpdiff.solvers.common import clip_schedule, estimate_noise_level, initial_estimate
from pnpdiff.solvers.daps import daps
from pnpdiff.solvers.ddnm import ddnm, ddnm_plus
from pnpdiff.solvers.ddrm import ddrm
from pnpdiff.solvers.diffpir import diffpir
from pnpdiff.solvers.dpir import dpir
from pnpdiff.solvers.dps import dps
from pnpdiff.solvers.mmse import mmse
from pnpdiff.solvers.pigdm import pigdm
from pnpdiff.solvers.pnpdm import pnpdm
from pnpdiff.solvers.reddiff import reddiff
from pnpdiff.solvers.samplers import ddim, ddpm, euler, heun
from pnpdiff.solvers.smc import smc

SOLVERS = {
    "diffpir": diffpir,
    "ddrm": ddrm,
    "ddnm": ddnm,
    "ddnm+": ddnm_plus,
    "dpir": dpir,
    "mmse": mmse,
    "dps": dps,
    "pigdm": pigdm,
    "reddiff": reddiff,
    "smc": smc,
    "daps": daps,
    "pnpdm": pnpdm,
}

__all__ = ["SOLVERS", "diffpir", "clip_schedule", "initial_estimate", "estimate_noise_level"]
__all__ += ["ddrm", "ddnm", "ddnm_plus", "dpir", "ddpm", "ddim", "euler", "heun"]
__all__ += ["dps", "pigdm", "reddiff", "mmse", "smc", "daps", "pnpdm"]
