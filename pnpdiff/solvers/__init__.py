"""Solvers: one function per method, each one loop over a decreasing sigma schedule.

``SOLVERS`` maps the names accepted by ``pnpdiff.solve(method=...)`` to the functions;
``DESCRIPTORS`` maps them to what pnpdiff knows about each (:class:`SolverInfo`: defaults, memory
cost, backpropagation, point estimate, option ranges), defined in the solver's own file. Both are
filled by :func:`register`, below: adding a solver is its file and one entry here.
"""

from __future__ import annotations

from pnpdiff.solvers import daps as _daps
from pnpdiff.solvers import ddnm as _ddnm
from pnpdiff.solvers import ddrm as _ddrm
from pnpdiff.solvers import diffpir as _diffpir
from pnpdiff.solvers import dpir as _dpir
from pnpdiff.solvers import dps as _dps
from pnpdiff.solvers import mmse as _mmse
from pnpdiff.solvers import pigdm as _pigdm
from pnpdiff.solvers import pnpdm as _pnpdm
from pnpdiff.solvers import reddiff as _reddiff
from pnpdiff.solvers import samplers as _samplers
from pnpdiff.solvers import smc as _smc
from pnpdiff.solvers.common import clip_schedule, estimate_noise_level, initial_estimate
from pnpdiff.solvers.daps import daps
from pnpdiff.solvers.ddnm import ddnm, ddnm_plus
from pnpdiff.solvers.ddrm import ddrm
from pnpdiff.solvers.descriptor import (
    DESCRIPTORS,
    SAMPLER_DESCRIPTORS,
    SOLVERS,
    SolverInfo,
    descriptor,
    register,
    unregister,
)
from pnpdiff.solvers.diffpir import diffpir
from pnpdiff.solvers.dpir import dpir
from pnpdiff.solvers.dps import dps
from pnpdiff.solvers.mmse import mmse
from pnpdiff.solvers.pigdm import pigdm
from pnpdiff.solvers.pnpdm import pnpdm
from pnpdiff.solvers.reddiff import reddiff
from pnpdiff.solvers.samplers import ddim, ddpm, euler, heun
from pnpdiff.solvers.smc import smc

# the methods of solve, in this order (SOLVERS keeps it)
for _info in (
    _diffpir.INFO,
    _ddrm.INFO,
    _ddnm.INFO,
    _ddnm.INFO_PLUS,
    _dpir.INFO,
    _mmse.INFO,
    _dps.INFO,
    _pigdm.INFO,
    _reddiff.INFO,
    _smc.INFO,
    _daps.INFO,
    _pnpdm.INFO,
):
    register(_info)
for _info in _samplers.INFOS:
    register(_info, sampler=True)
del _info

__all__ = ["SOLVERS", "DESCRIPTORS", "SAMPLER_DESCRIPTORS", "SolverInfo", "register", "unregister", "descriptor"]
__all__ += ["diffpir", "clip_schedule", "initial_estimate", "estimate_noise_level"]
__all__ += ["ddrm", "ddnm", "ddnm_plus", "dpir", "ddpm", "ddim", "euler", "heun"]
__all__ += ["dps", "pigdm", "reddiff", "mmse", "smc", "daps", "pnpdm"]
