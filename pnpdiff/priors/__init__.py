"""Priors: denoiser families behind one contract, ``prior.denoise(x, sigma)`` (see :mod:`.base`)."""

from __future__ import annotations

from typing import Any

from pnpdiff.errors import UnknownNameError
from pnpdiff.priors.base import Prior, as_sigma
from pnpdiff.priors.ffdnet import FFDNet, FFDNetPrior

__all__ = ["Prior", "as_sigma", "FFDNet", "FFDNetPrior", "load_prior"]

_CACHE: dict[str, Prior] = {}


def load_prior(spec: Any) -> Prior:
    """Resolve a prior specification (temporary minimal registry: ``"natural"`` or a Prior)."""
    if isinstance(spec, Prior):
        return spec
    if spec == "natural":
        if "natural" not in _CACHE:
            _CACHE["natural"] = FFDNetPrior()
        return _CACHE["natural"]
    raise UnknownNameError(f"unknown prior {spec!r}; known: 'natural'")
