"""How a prior's network runs: precision (autocast) and ``torch.compile``, without touching the solver.

``with_runtime(prior, precision="bf16", compile=True)`` returns a prior whose ``denoise`` runs the
network under ``torch.autocast`` in bfloat16 / float16 and/or through ``torch.compile``, and
returns the estimate in the caller's dtype: the solvers' data-consistency steps, FFTs, conjugate
gradients and schedules stay in float32 / float64. ``precision="fp32"`` without compilation
returns the prior itself (bit-identical results).

Measured on this project's CI machine (an AVX2 CPU without native bfloat16): FFDNet at 256^2 runs
8x *slower* under bfloat16 autocast than in float32 (the bfloat16 kernels are emulated), so
``"bf16"`` warns there; CPUs with AVX512-BF16 / AMX and CUDA GPUs run it natively.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch
from torch import Tensor

from pnpdiff.errors import PnPWarning, ValueRangeError
from pnpdiff.priors.base import Prior

__all__ = ["PRECISIONS", "RuntimePrior", "with_runtime", "cpu_has_native_bf16"]

#: ``precision=`` values and the autocast dtype they select (``None``: no autocast)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

_FORWARDED = ("sigma_min", "sigma_max", "channels", "size", "data_range", "data_mean", "data_var", "accepts_grey",
              "name", "classes", "class_names", "card")


def forward_attributes(wrapper: Prior, prior: Prior) -> None:
    """Give a prior that wraps ``prior`` the wrapped prior's range, shape and card attributes."""
    for attr in _FORWARDED:
        if hasattr(prior, attr):
            setattr(wrapper, attr, getattr(prior, attr))


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU advertises native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16; Linux flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:  # not Linux: assume a recent CPU
        return True
    return "avx512_bf16" in flags or "amx_bf16" in flags


class RuntimePrior(Prior):
    """``prior`` with its network run under autocast and/or ``torch.compile`` (see the module doc).

    Parameters
    ----------
    prior : Prior
        The prior to run.
    precision : {"fp32", "bf16", "fp16"}
        Autocast dtype of the network (``"fp16"``: CUDA only).
    compile : bool
        Run ``prior.denoise`` through ``torch.compile`` (compiled once per input shape, dtype and
        grad mode; the first call of each shape pays the compilation).
    """

    def __init__(self, prior: Prior, precision: str = "fp32", compile: bool = False) -> None:
        super().__init__()
        self.prior = prior
        forward_attributes(self, prior)
        self.precision = precision
        self.autocast_dtype = PRECISIONS[precision]
        self.compiled = bool(compile)
        self._fn = torch.compile(prior.denoise, dynamic=False) if compile else prior.denoise

    def denoise(self, x: Tensor, sigma: float | Tensor, **kwargs: Any) -> Tensor:
        if self.autocast_dtype is None:
            return self._fn(x, sigma, **kwargs)
        with torch.autocast(device_type=x.device.type, dtype=self.autocast_dtype):
            out = self._fn(x, sigma, **kwargs)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"precision={self.precision}, compile={self.compiled}"


def with_runtime(prior: Prior, precision: str = "fp32", compile: bool = False,
                 device: torch.device | str | None = None) -> Prior:
    """``prior`` set up to run at ``precision`` (and compiled); the prior itself for fp32 uncompiled.

    Raises
    ------
    ValueRangeError
        An unknown precision, or ``"fp16"`` on a CPU (half-precision convolutions are a GPU feature).
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueRangeError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not isinstance(compile, bool):
        raise ValueRangeError(f"compile must be true or false, got {compile!r}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if precision == "fp16" and dev.type != "cuda":
        raise ValueRangeError("precision='fp16' runs on CUDA only; use 'bf16' or 'fp32' on the CPU")
    if precision == "bf16" and dev.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn("this CPU has no native bfloat16 (no AVX512-BF16 / AMX): precision='bf16' runs emulated, "
                      "several times slower than 'fp32' here", PnPWarning, stacklevel=3)
    if precision == "fp32" and not compile:
        return prior
    return RuntimePrior(prior, precision, compile)
