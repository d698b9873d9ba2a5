"""How much memory a solve needs: the estimates, built from the priors' and the solvers' costs.

A restoration holds the image, a handful of image-sized working tensors of the solver, and the
activations of the denoiser, which dominate: FFDNet (the ``natural`` prior) runs 12 convolutions
of 96 channels at half resolution, i.e. 96 bytes per image pixel per float32 activation. Under
``torch.no_grad`` only a few of them are alive at once; the methods that backpropagate through the
denoiser (:data:`BACKPROP_METHODS`: ``dps``, ``pigdm`` and ``smc``, which call ``torch.autograd.grad``
through ``prior.denoise``; ``backprop`` of their :class:`~pnpdiff.solvers.SolverInfo`) keep every
layer's activation for the backward pass. RED-diff differentiates only the data term and calls the
denoiser under ``no_grad``.

:func:`estimate_solve_bytes` is therefore ``pixels x (prior cost + method cost) + fixed overhead``:

* the prior's cost per pixel, with or without a graph: stated by the prior itself
  (``prior.memory_per_pixel``, see :func:`prior_bytes_per_pixel`), else taken from
  :data:`PRIOR_COSTS` (keyed by class name), computed from the architecture for ADM UNets
  (:func:`adm_activation_units`), or a conservative default (:data:`DEFAULT_PRIOR_COST`) for an
  unknown denoiser;
* allocator fragmentation while the denoiser's activations are small (:data:`HEAP_THRESHOLD`);
* the method's image-sized working buffers and fixed overhead (``memory_cost`` of its
  descriptor, :data:`METHOD_COSTS`; more for the spectral views of ddrm / ddnm+ and the Adam
  moments of reddiff), and a few measurement-sized ones;
* the measurement itself (decoded and as a float tensor), and the weights of a prior that is
  named but not loaded yet.

:func:`pnpdiff.memory.check_memory` compares an estimate with the memory available (times
:data:`~pnpdiff.memory.SAFETY_FRACTION`) or with a limit given on purpose (``limit=`` or the
environment variable ``PNPDIFF_MAX_MEMORY``, e.g. ``"40G"``, or ``"off"``) and raises
:class:`~pnpdiff.errors.MemoryLimitError` with a one-line message saying what to change;
:func:`memory_advice` is the method's part of that message.

This module is layer L5: it reads the solver descriptors (:mod:`pnpdiff.solvers`) and the
priors' architectures; :mod:`pnpdiff.memory` (limits, parsing, the check) stays below the
operators, which use it.

Calibration
-----------
The constants are fitted to the peak resident memory measured on the CPU (2 cores, torch 2.14,
float32, glibc malloc) by ``tests/benchmarks/memory_calibration.py``: each case runs in a fresh
process whose baseline (pnpdiff imported, prior loaded, operator and measurement built) is
subtracted by resetting the kernel's peak-RSS counter (``/proc/self/clear_refs``) just before the
work. ``solve(..., steps=2)`` with Gaussian blur (std 2 px, circular), 4x super-resolution, 50 %
random inpainting and denoising (``mmse``); ``denoise`` / ``denoise_grad`` are one FFDNet call
without / with the vector-Jacobian product. ``adm`` and ``adm-b`` are small randomly initialised
ADM UNets (ffhq's and imagenet's layouts, 32 channels) that calibrate :func:`adm_activation_units`;
``drunet`` is deepinv's DRUNet with random weights. The estimates are those of this module::

    for op in blur sr inpaint; do python tests/benchmarks/memory_calibration.py --sizes 128 256 512 \\
        --op $op --json rows.jsonl; done       # and --sizes 768 1024, --op identity, --prior adm ...
    python tests/benchmarks/memory_calibration.py --table rows.jsonl --sizes 128 256 512 768 1024

    blur: measured / estimate (MiB), estimate / measured
        prior   case                    128            256            512            768           1024
        natural denoise          18/23 1.29     43/48 1.14   144/152 1.05   199/282 1.42   349/444 1.27
        natural denoise_grad     41/46 1.13   135/143 1.06   504/532 1.05  776/1036 1.34 1399/1671 1.19
        natural diffpir          19/30 1.61     55/61 1.12   170/185 1.09   256/351 1.37   478/561 1.17
        natural dpir             20/31 1.51     49/64 1.29   184/194 1.06              -   431/597 1.39
        natural dps              48/64 1.33   137/172 1.26   573/603 1.05  837/1180 1.41 1476/1916 1.30
        natural pigdm            49/57 1.17   148/164 1.11   534/588 1.10  901/1154 1.28 1555/1874 1.20
        natural ddrm             25/34 1.35     69/76 1.11   222/245 1.10   361/486 1.35   615/801 1.30
        natural ddnm             19/31 1.60     57/64 1.12   182/194 1.07              -   464/597 1.29
        natural ddnm+            25/34 1.34     63/74 1.18   223/236 1.06              -   597/765 1.28
        natural reddiff          26/33 1.29     61/72 1.18   188/227 1.21   341/445 1.30   575/729 1.27
        adm     denoise          58/79 1.36   149/267 1.79              -              -              -
        adm     denoise_grad   203/304 1.50  807/1180 1.46              -              -              -
        adm     diffpir          62/87 1.39   254/280 1.10              -              -              -
        adm     dps            241/322 1.34  902/1208 1.34              -              -              -
        adm-b   denoise          51/86 1.70   362/465 1.29              -              -              -
        adm-b   denoise_grad   265/406 1.53 1708/2165 1.27              -              -              -
        adm-b   diffpir          64/94 1.48   406/478 1.18              -              -              -
        adm-b   dps            301/423 1.41 1993/2193 1.10              -              -              -
        drunet  denoise          55/68 1.24   159/199 1.25              -              -              -
        drunet  denoise_grad   193/227 1.18   689/813 1.18              -              -              -
        drunet  diffpir          52/75 1.44   197/212 1.07              -              -              -
        drunet  dps            193/245 1.27   772/842 1.09              -              -              -
    sr: measured / estimate (MiB), estimate / measured
        prior   case                    128            256            512            768           1024
        natural denoise          17/23 1.37     41/48 1.17   141/152 1.07              -              -
        natural denoise_grad     35/46 1.33   128/143 1.12   346/532 1.53              -              -
        natural diffpir          24/29 1.20     54/58 1.06   162/170 1.05              -              -
        natural dpir             23/30 1.29     50/60 1.20   158/179 1.13              -              -
        natural dps              49/63 1.29   144/168 1.17   498/588 1.18              -              -
        natural pigdm            52/56 1.08   152/160 1.05   525/573 1.09              -              -
        natural ddrm             31/33 1.08     69/73 1.06   213/230 1.08              -              -
        natural ddnm             24/30 1.24     52/60 1.15   156/179 1.15              -              -
        natural ddnm+            29/33 1.11     62/70 1.13   198/221 1.12              -              -
        natural reddiff          28/32 1.13     58/68 1.17   185/212 1.15              -              -
    inpaint: measured / estimate (MiB), estimate / measured
        prior   case                    128            256            512            768           1024
        natural denoise          17/23 1.32     42/48 1.15   141/152 1.07              -              -
        natural denoise_grad     38/46 1.22   124/143 1.15   480/532 1.11              -              -
        natural diffpir          28/30 1.07     58/61 1.06   172/185 1.07              -              -
        natural dpir             27/31 1.13     56/64 1.14   168/194 1.15              -              -
        natural dps              54/64 1.19   151/172 1.14   527/603 1.14              -              -
        natural pigdm            52/57 1.10   150/164 1.09   559/588 1.05              -              -
        natural ddrm             30/34 1.14     64/76 1.20   197/245 1.25              -              -
        natural ddnm             29/31 1.08     57/64 1.12   173/194 1.13              -              -
        natural ddnm+            29/34 1.14     64/74 1.15   181/236 1.30              -              -
        natural reddiff          31/33 1.06     66/72 1.09   210/227 1.08              -              -
    identity: measured / estimate (MiB), estimate / measured
        prior   case                    128            256            512            768           1024
        natural mmse             25/28 1.11     51/58 1.14   149/177 1.19              -              -
    repeated runs (the largest is shown): 49 cells, up to 1.67x apart;
    against the smallest run the ratio reaches 1.77 (dpir, blur 128^2)

The estimate bounds every measured peak: FFDNet by 1.05x to 1.45x from 256^2 up and up to 1.6x
at 128^2 (where fixed costs of 20-30 MiB, that vary with the operator, dominate); the small ADMs
and DRUNet by 1.07x to 1.8x (ffhq's and imagenet's UNets are estimated from their architecture,
no checkpoint being available here: 50 and 150 KiB per pixel with a graph, 10 and 24 without,
at 256^2: dps needs about 3.6 and 11.5 GiB, weights included). Two
runs of the same case can differ by up to 1.7x (e.g. dpir on blur at 512^2: 110 and 184 MiB):
allocations below 32 MiB come from the C heap, where freed activations leave holes
(:data:`HEAP_THRESHOLD`); larger ones are mapped and returned exactly, so the cost per pixel is
highest up to about 600^2 and settles beyond (FFDNet: 350 B/px without a graph, 1400 B/px with
one, at 768^2 and 1024^2). On CUDA the same figures are used (no GPU was available for
calibration); cuDNN workspaces and the caching allocator's rounding come on top and are left to
:data:`~pnpdiff.memory.SAFETY_FRACTION`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from pnpdiff.memory import MiB, largest_batch, memory_limit, shape4
from pnpdiff.solvers.descriptor import (
    DESCRIPTORS,
    SAMPLER_DESCRIPTORS,
    DerivedSet,
    DerivedTable,
    SolverInfo,
    descriptor,
)

__all__ = [
    "largest_fitting_batch",
    "estimate_solve_bytes",
    "estimate_denoise_bytes",
    "prior_bytes_per_pixel",
    "prior_weights_bytes",
    "adm_activation_units",
    "memory_advice",
    "PriorCost",
    "BACKPROP_METHODS",
    "METHOD_BUFFERS",
    "METHOD_COSTS",
    "PRIOR_COSTS",
    "DEFAULT_METHOD_COST",
    "DEFAULT_PRIOR_COST",
]


def _registered() -> dict[str, SolverInfo]:
    """Every descriptor with a memory model: the methods of solve, then the samplers."""
    return {**SAMPLER_DESCRIPTORS, **DESCRIPTORS}


#: methods that backpropagate through the denoiser (``torch.autograd.grad`` through
#: ``prior.denoise``): the whole graph of one denoiser call is alive at the peak (``smc``: its
#: default twisted proposal, one vector-Jacobian product per chunk of particles). A view of the
#: descriptors' ``backprop``.
BACKPROP_METHODS = DerivedSet(lambda: [name for name, info in DESCRIPTORS.items() if info.backprop])

#: methods without backpropagation, suggested instead of a backprop one
NO_BACKPROP_ALTERNATIVES = ("diffpir", "dpir", "ddnm")

#: image-sized working tensors of each method (in units of ``x``: ``B * C * H * W`` values of the
#: image dtype) at its peak, the operator's own (FFT spectra, CG vectors, masks) included, on top
#: of the prior's cost, and the method's extra fixed overhead (MiB). Fitted to the measurements
#: (blur, 4x super-resolution, inpainting; 128^2 to 1024^2); unknown methods (and those whose
#: descriptor states none) get :data:`DEFAULT_METHOD_COST`. A view of the descriptors'
#: ``memory_cost``, the unconditional samplers of :func:`pnpdiff.sample` included.
METHOD_COSTS = DerivedTable(lambda: {name: info.memory_cost for name, info in _registered().items()
                                     if info.memory_cost is not None}, "method -> (buffers, overhead MiB)")
DEFAULT_METHOD_COST = (32.0, 16.0)
#: image-sized buffers of each method (the first entry of :data:`METHOD_COSTS`)
METHOD_BUFFERS = DerivedTable(lambda: {k: v[0] for k, v in METHOD_COSTS.items()}, "method -> buffers")


def _method_cost(method: str) -> tuple[tuple[float, float], bool]:
    """``((buffers, overhead MiB), backprop)`` of a method or sampler (the defaults for an unknown one)."""
    info = descriptor(method) if isinstance(method, str) else None
    if info is None:
        return DEFAULT_METHOD_COST, False
    return (info.memory_cost if info.memory_cost is not None else DEFAULT_METHOD_COST), info.backprop


def memory_advice(method: str | None) -> list[str]:
    """What a memory refusal of a ``method`` solve advises besides a smaller image and more memory.

    The descriptor's own ``memory_advice`` (smc: no twisted proposal, fewer particles), else for
    a method that backpropagates through the denoiser the methods without (about a third of the
    memory); nothing for the others. Passed to :func:`pnpdiff.memory.check_memory` (``advice``).

    Parameters
    ----------
    method : str or None
        The method (``None`` or an unknown name: no advice).

    Returns
    -------
    list of str
    """
    info = descriptor(method) if isinstance(method, str) else None
    if info is None:
        return []
    if info.memory_advice:
        return [info.memory_advice]
    if info.backprop:
        others = ", ".join(NO_BACKPROP_ALTERNATIVES)
        return [f"a method without backpropagation through the denoiser ({others} instead of "
                f"{method}: about a third of the memory)"]
    return []


#: measurement-sized working tensors (``y``, ``A x0``, residuals) of any method
Y_BUFFERS = 4

#: bytes per step of the sigma schedule: its float64 tensor, the solver's list of Python floats and
#: the progress bar's bookkeeping (a schedule of 10^7 sigmas alone is over 1 GiB)
SCHEDULE_BYTES_PER_STEP = 128
#: steps whose schedule the fixed overheads of :data:`METHOD_COSTS` already hold (128 KiB); each
#: step beyond counts :data:`SCHEDULE_BYTES_PER_STEP`
SCHEDULE_FREE_STEPS = 1000

#: glibc serves allocations below 32 MiB (its largest dynamic mmap threshold) from the heap, where
#: freed activations leave holes: while one activation of the denoiser is smaller than this, the
#: peak is higher by a cost per pixel (``heap_no_grad`` / ``heap_grad`` of :class:`PriorCost`);
#: larger ones are mapped and returned exactly
HEAP_THRESHOLD = 32 * MiB


class PriorCost:
    """Memory cost of a prior's denoiser: bytes per image pixel (``B * H * W``) of one call at its
    peak, with and without an autograd graph, a fixed overhead and the size of its weights.

    Parameters
    ----------
    no_grad, grad : float
        Bytes per pixel under ``no_grad`` and with the graph kept for a vector-Jacobian product
        (forward and backward), for large images.
    overhead_mib, overhead_grad_mib : float
        Fixed cost of a call (kernel libraries' scratch space, the autograd engine), MiB.
    heap_no_grad, heap_grad : float
        Extra bytes per pixel while one activation (``activation_bytes`` per pixel) is below
        :data:`HEAP_THRESHOLD` (allocator fragmentation; for at most that many pixels).
    activation_bytes : float
        Bytes per pixel of one activation (FFDNet: 96 channels at half resolution, float32: 96).
    weights_bytes : int
        Size of the weights, counted when the prior is named but not loaded yet.
    measured : bool
        Whether the figures were measured (else derived, or a conservative default).
    """

    def __init__(self, no_grad: float, grad: float, overhead_mib: float = 24.0, overhead_grad_mib: float = 32.0, *,
                 heap_no_grad: float = 0.0, heap_grad: float = 0.0, activation_bytes: float = 0.0,
                 weights_bytes: int = 0, measured: bool = False) -> None:
        self.no_grad = float(no_grad)
        self.grad = float(grad)
        self.overhead_mib = float(overhead_mib)
        self.overhead_grad_mib = float(overhead_grad_mib)
        self.heap_no_grad = float(heap_no_grad)
        self.heap_grad = float(heap_grad)
        self.activation_bytes = float(activation_bytes)
        self.weights_bytes = int(weights_bytes)
        self.measured = measured

    def per_pixel(self, grad: bool) -> float:
        """Bytes per pixel with (``grad=True``) or without a graph, for large images."""
        return self.grad if grad else self.no_grad

    def overhead(self, grad: bool) -> int:
        """Fixed bytes of one call."""
        return int((self.overhead_grad_mib if grad else self.overhead_mib) * MiB)

    def heap(self, grad: bool, pixels: int) -> int:
        """Fragmentation bytes on ``pixels`` pixels (see :data:`HEAP_THRESHOLD`)."""
        h = self.heap_grad if grad else self.heap_no_grad
        if h <= 0 or self.activation_bytes <= 0:
            return 0
        return int(h * min(pixels, HEAP_THRESHOLD / self.activation_bytes))

    def __repr__(self) -> str:
        return (f"PriorCost(no_grad={self.no_grad:g}, grad={self.grad:g}, overhead_mib={self.overhead_mib:g}, "
                f"overhead_grad_mib={self.overhead_grad_mib:g}, heap_no_grad={self.heap_no_grad:g}, "
                f"heap_grad={self.heap_grad:g}, activation_bytes={self.activation_bytes:g}, "
                f"weights_bytes={self.weights_bytes})")


#: the cost of the priors pnpdiff knows, keyed by class name (for a ``DeepinvPrior`` also the class
#: name of the wrapped deepinv model). FFDNet and DRUNet are measured (see the module docstring);
#: the grey FFDNet (64 channels, 15 layers with batch norm) is scaled from the colour one.
PRIOR_COSTS: dict[str, PriorCost] = {
    # 96 channels at half resolution = 96 B/px per activation: 3.6 alive at the peak under
    # no_grad (measured 350 B/px at 768^2 and 1024^2: a convolution's input, its output and a
    # reordered copy), 14.6 with the graph (1400 B/px: 12 saved and the backward's gradients)
    "FFDNetPrior": PriorCost(370, 1450, 14, 14, heap_no_grad=180, heap_grad=620, activation_bytes=96,
                             weights_bytes=3_400_000, measured=True),
    "FFDNetGrayPrior": PriorCost(250, 1800, 14, 14, heap_no_grad=120, heap_grad=770, activation_bytes=64,
                                 weights_bytes=2_200_000),
    # analytic priors: a few (B, K, d) float64 tensors, negligible for the small K they are used with
    "GaussianMixturePrior": PriorCost(0, 0, 8, 8),
    "GaussianPrior": PriorCost(0, 0, 8, 8),
    # deepinv DRUNet (64..512 channels, 4 levels, full resolution), measured at 128^2 and 256^2
    "DRUNet": PriorCost(2800, 12500, 24, 32, weights_bytes=131_000_000, measured=True),
}

#: an unknown denoiser (a callable, a deepinv model not in the table): about twice the costliest
#: measured one, so that a run is refused only when it is far out of reach
DEFAULT_PRIOR_COST = PriorCost(4096, 24576, 32, 48)

#: ADM UNets: bytes per "activation unit" (one channel at full resolution, float32) at the peak,
#: fitted on small randomly initialised ADMs (see :func:`adm_activation_units`)
ADM_NO_GRAD_FACTOR = 3.3
ADM_GRAD_FACTOR = 4.8
ADM_OVERHEAD_MIB = (24.0, 32.0)
#: attention matrices (float32 ``heads x T x T``): the softmax's input and output of one block
#: without a graph; about one per block (its saved softmax output) with one
ADM_ATTENTION_NO_GRAD = 2.0
ADM_ATTENTION_GRAD = 1.25


def adm_activation_units(config: Any) -> tuple[float, float, float, float]:
    """Activation load of an ADM UNet, in channels per input pixel.

    Walks the architecture of :class:`~pnpdiff.priors.ADMUNet` (channels and downsampling factor
    ``ds`` of every residual block) and returns ``(no_grad, grad, attention_max, attention_sum)``:

    * ``no_grad``: the largest sum, over the forward pass, of the skip tensors still held for the
      decoder plus the input and output of the running block, ``(c_in + c_out) / ds^2``;
    * ``grad``: the sum over all residual and attention blocks of ``(c_in + c_out) / ds^2`` (each
      block saves its group-norm, SiLU and convolution inputs for the backward pass) plus the
      skip tensors;
    * ``attention_max``, ``attention_sum``: the largest and the sum over the attention blocks of
      ``heads * T^2 / (H * W)^2``, with ``T = H W / ds^2`` the tokens of a block: their attention
      matrices grow with the square of the pixels (one block at a time without a graph, every
      block's softmax output with one).

    Parameters
    ----------
    config : ADMConfig or mapping
        The architecture.
    """
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    mc = int(get("model_channels", 128))
    mult = tuple(get("channel_mult", (1, 1, 2, 2, 4, 4)))
    nrb = int(get("num_res_blocks", 1))
    size = int(get("image_size", 256))
    att_ds = {size // int(r) for r in get("attention_resolutions", ())}
    head_ch = int(get("num_head_channels", 64))
    n_heads = int(get("num_heads", 4))
    state = {"live": 0.0, "peak": 0.0, "grad": 0.0, "att_max": 0.0, "att_sum": 0.0}

    def block(c_in: float, c_out: float) -> None:
        state["peak"] = max(state["peak"], state["live"] + c_in + c_out)
        state["grad"] += c_in + c_out

    def attention(ch: int, ds: int) -> None:
        block(4 * ch / ds**2, ch / ds**2)  # x, q, k, v -> out
        att = (ch // head_ch if head_ch > 0 else n_heads) / ds**4
        state["att_max"] = max(state["att_max"], att)
        state["att_sum"] += att

    skips: list[float] = []

    def push(units: float) -> None:
        skips.append(units)
        state["live"] += units

    ch = int(mult[0] * mc)
    ds = 1
    block(int(get("in_channels", 3)), ch)
    push(ch)
    for level, m in enumerate(mult):
        for _ in range(nrb):
            out = int(m * mc)
            block(ch / ds**2, out / ds**2)
            ch = out
            if ds in att_ds:
                attention(ch, ds)
            push(ch / ds**2)
        if level != len(mult) - 1:
            block(ch / ds**2, ch / (2 * ds) ** 2)
            ds *= 2
            push(ch / ds**2)
    block(ch / ds**2, ch / ds**2)
    attention(ch, ds)
    block(ch / ds**2, ch / ds**2)
    for level, m in list(enumerate(mult))[::-1]:
        for i in range(nrb + 1):
            skip = skips.pop()
            out = int(mc * m)
            block(ch / ds**2 + (ch / ds**2 + skip), out / ds**2)  # h, cat(h, skip) -> out
            state["live"] -= skip
            ch = out
            if ds in att_ds:
                attention(ch, ds)
            if level and i == nrb:
                block(ch / ds**2, ch / (ds // 2) ** 2)
                ds //= 2
    block(ch, int(get("out_channels", 6)))
    return state["peak"], state["grad"], state["att_max"], state["att_sum"]


def _adm_cost(config: Any, named: bool, hw: int, grad: bool) -> tuple[float, int]:
    """``(bytes per pixel, weights)`` of an ADM UNet call on ``hw``-pixel images (the attention
    matrices, quadratic in ``hw``, spread over the pixels)."""
    if hw <= 0:
        size = int(config.get("image_size", 256) if isinstance(config, dict) else getattr(config, "image_size", 256))
        hw = size * size
    no_grad_u, grad_u, att_max, att_sum = adm_activation_units(config)
    att_bytes = int(4 * (ADM_ATTENTION_GRAD * att_sum if grad else ADM_ATTENTION_NO_GRAD * att_max) * hw**2)
    weights = 0
    if named:
        try:
            from pnpdiff.priors.adm import ADMUNet

            with torch.device("meta"):
                net = ADMUNet(config)
            weights = sum(p.numel() * p.element_size() for p in net.parameters())
        except Exception:  # noqa: BLE001 - an estimate: fall back to a generous figure
            weights = 2_300_000_000
    per_px = 4 * (ADM_GRAD_FACTOR * grad_u if grad else ADM_NO_GRAD_FACTOR * no_grad_u)
    return per_px + att_bytes / max(hw, 1), weights


def _stated_cost(prior: Any, grad: bool) -> float | None:
    """A prior's own statement of its cost per pixel, if it makes one."""
    for attr in ("memory_per_pixel", "activation_bytes_per_pixel"):
        hook = getattr(prior, attr, None)
        if hook is None or isinstance(hook, property):  # a property read on the class: no statement
            continue
        if isinstance(prior, type) and callable(hook) and not isinstance(hook, (staticmethod, classmethod)):
            try:
                value = hook(None, grad)  # an unbound method on a class: no instance state used
            except Exception:  # noqa: BLE001
                continue
        elif callable(hook):
            try:
                value = hook(grad=grad)
            except TypeError:
                value = hook(grad)
        else:
            value = hook
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
            value = value[1] if grad else value[0]
        return float(value)
    return None


def _resolve_prior(prior: Any) -> tuple[Any, bool]:
    """``(object or class, loaded)`` for a prior given as an instance, a class or a name."""
    if isinstance(prior, str):
        name = prior.split(":")[0]
        if name == "natural":
            from pnpdiff.priors.ffdnet import FFDNetPrior

            return FFDNetPrior, False
        if name in ("ffhq", "imagenet"):
            try:
                from pnpdiff.priors.adm import adm_config

                return adm_config(name), False
            except Exception:  # noqa: BLE001 - unknown card: the default cost
                return None, False
        return None, False
    return prior, not isinstance(prior, type)


def prior_bytes_per_pixel(prior: Any, grad: bool) -> float:
    """Bytes per image pixel (``B * H * W``) of one denoiser call of ``prior`` at its peak, for
    large images (smaller ones add allocator fragmentation, see :data:`HEAP_THRESHOLD`).

    In order: the prior's own statement — an attribute ``memory_per_pixel`` (a number, a pair
    ``(no_grad, grad)`` or a callable ``f(grad) -> bytes``) or a method
    ``activation_bytes_per_pixel(grad)`` —, the architecture of an ADM UNet, :data:`PRIOR_COSTS`
    by class name (and, for a deepinv model wrapped in a ``DeepinvPrior``, by the model's class
    name), else :data:`DEFAULT_PRIOR_COST`. A loaded model in another dtype than float32 scales
    the table's figures by its parameters' size.

    Parameters
    ----------
    prior : Prior, Prior subclass, str or callable
        The prior, its class, or a registry name (``"natural"``, ``"ffhq"``, ``"imagenet"``).
    grad : bool
        Whether the call keeps the autograd graph for a backward pass.
    """
    return _prior_cost(prior, grad, 0)[0].per_pixel(grad)


def _dtype_scale(obj: Any) -> float:
    """Parameter size of a loaded model relative to float32 (1 for anything else)."""
    params = getattr(obj, "parameters", None)
    if isinstance(obj, type) or not callable(params):
        return 1.0
    try:
        p = next(iter(params()), None)
    except Exception:  # noqa: BLE001 - not a module after all
        return 1.0
    return p.element_size() / 4 if p is not None and p.is_floating_point() else 1.0


def _prior_cost(prior: Any, grad: bool, hw: int) -> tuple[PriorCost, int]:
    """``(cost of one denoiser call, bytes of weights still to load)``; ``hw``: pixels of one
    image (for the attention matrices of an ADM UNet; 0: its training size)."""
    obj, loaded = _resolve_prior(prior)
    stated = _stated_cost(obj, grad) if obj is not None else None
    if stated is not None:
        return PriorCost(stated, stated, 14, 16), 0
    config = None
    if obj is not None and type(obj).__name__ == "ADMConfig":
        config, loaded = obj, False
    elif obj is not None and not isinstance(obj, type) and type(getattr(obj, "config", None)).__name__ == "ADMConfig":
        config = obj.config
    scale = _dtype_scale(obj)
    if config is not None:
        per_px, weights = _adm_cost(config, not loaded, hw, grad)
        return PriorCost(scale * per_px, scale * per_px, *ADM_OVERHEAD_MIB), weights
    names: list[str] = []
    if obj is not None:
        cls = obj if isinstance(obj, type) else type(obj)
        names += [c.__name__ for c in cls.__mro__]
        inner = getattr(obj, "denoiser", None)
        if inner is not None:
            names.insert(0, type(inner).__name__)
    cost, weights = DEFAULT_PRIOR_COST, 0
    for name in names:
        if name in PRIOR_COSTS:
            cost = PRIOR_COSTS[name]
            weights = 0 if loaded else cost.weights_bytes
            break
    if scale != 1.0:
        c = cost
        cost = PriorCost(scale * c.no_grad, scale * c.grad, c.overhead_mib, c.overhead_grad_mib,
                         heap_no_grad=scale * c.heap_no_grad, heap_grad=scale * c.heap_grad,
                         activation_bytes=scale * c.activation_bytes)
    return cost, weights


def prior_weights_bytes(prior: Any) -> int:
    """Bytes of weights that loading ``prior`` (a registry name or a class) will allocate, as
    :func:`estimate_solve_bytes` counts them; 0 for a loaded prior or an unknown one."""
    try:
        return int(_prior_cost(prior, False, 0)[1])
    except Exception:  # noqa: BLE001 - as estimate_solve_bytes: a cost that cannot be read counts 0
        return 0


def estimate_denoise_bytes(x_shape: Sequence[int], prior: Any, grad: bool = False) -> int:
    """Peak memory (bytes) of one ``prior.denoise`` call on an image of shape ``x_shape``, with
    (``grad=True``: forward and vector-Jacobian product) or without an autograd graph."""
    s4 = shape4(x_shape)
    n = math.prod(int(v) for v in x_shape)
    pixels = s4[0] * s4[2] * s4[3] if s4 is not None else n
    try:
        cost, weights = _prior_cost(prior, grad, s4[2] * s4[3] if s4 is not None else n)
    except Exception:  # noqa: BLE001 - as in estimate_solve_bytes
        cost, weights = DEFAULT_PRIOR_COST, 0
    return int(math.ceil(pixels * cost.per_pixel(grad) + cost.heap(grad, pixels) + cost.overhead(grad) + weights))



def estimate_solve_bytes(x_shape: Sequence[int], y_shape: Sequence[int] | None, prior: Any, method: str,
                         dtype: torch.dtype = torch.float32, *, steps: int = 0) -> int:
    """Peak memory (bytes) a solve needs on top of what is already allocated.

    ``pixels x (prior cost per pixel + method buffers x channels x itemsize) + allocator
    fragmentation + fixed overheads + the measurement + the weights of a prior that is not loaded
    yet`` (see the module docstring). An upper bound, by 1.0x to 1.6x, of the peak measured on the
    CPU for FFDNet with every method at 128^2 to 1024^2.

    Parameters
    ----------
    x_shape : sequence of int
        Shape of the image to restore, ``(B, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` (any other
        shape: a flat vector of values).
    y_shape : sequence of int or None
        Shape of the measurement (``None``: as ``x``).
    prior : Prior, Prior subclass or str
        The prior, its class or its registry name (``"natural"``, ``"ffhq"``, ...).
    method : str
        Solver name (:data:`pnpdiff.solvers.SOLVERS`).
    dtype : torch.dtype
        Dtype of the image and of the solver's tensors.
    steps : int
        Length of the sigma schedule: :data:`SCHEDULE_BYTES_PER_STEP` for each step beyond
        :data:`SCHEDULE_FREE_STEPS` (0: not counted).

    Returns
    -------
    int
        Bytes.
    """
    item = torch.empty((), dtype=dtype).element_size()
    x_numel = math.prod(int(v) for v in x_shape)
    y_numel = x_numel if y_shape is None else math.prod(int(v) for v in y_shape)
    s4 = shape4(x_shape)
    hw = s4[2] * s4[3] if s4 is not None else x_numel
    pixels = s4[0] * hw if s4 is not None else x_numel
    (buffers, overhead_mib), grad = _method_cost(method)
    try:
        cost, weights = _prior_cost(prior, grad, hw)
    except Exception:  # noqa: BLE001 - a prior whose cost cannot be read: the conservative default
        cost, weights = DEFAULT_PRIOR_COST, 0
    total = (
        pixels * cost.per_pixel(grad)
        + cost.heap(grad, pixels)
        + cost.overhead(grad)
        + buffers * x_numel * item
        + Y_BUFFERS * y_numel * item
        + y_numel * (item + 1)  # the measurement: decoded (8-bit) and as a tensor
        + overhead_mib * MiB
        + weights
        + max(int(steps) - SCHEDULE_FREE_STEPS, 0) * SCHEDULE_BYTES_PER_STEP
    )
    return int(math.ceil(total))



def largest_fitting_batch(x_shape: Sequence[int], y_shape: Sequence[int], prior: Any, method: str, n: int,
                          device: str | torch.device | None = None, limit: int | float | str | None = None,
                          dtype: torch.dtype = torch.float32, *, extra: int = 0, scale_y: bool = True,
                          steps: int = 0) -> int:
    """How many copies of a solve fit the run's memory budget: the largest ``k`` in ``[1, n]``.

    ``k`` copies of a solve of ``x_shape`` / ``y_shape`` are one solve of ``(k * B, C, H, W)``;
    its :func:`estimate_solve_bytes` plus ``extra`` must fit :func:`pnpdiff.memory.memory_limit`
    (``limit``, else ``PNPDIFF_MAX_MEMORY``, else :data:`~pnpdiff.memory.SAFETY_FRACTION` of what
    is available on ``device``). What
    :func:`pnpdiff.sample_posterior` (independent runs per call), SMC (particles per denoiser
    call) and ``batch_size: auto`` (images per solve, :mod:`pnpdiff.runs.batch`) batch by.

    Parameters
    ----------
    x_shape, y_shape : sequence of int
        Shapes of the image and of the measurement of one copy, ``(B, C, H, W)``.
    prior : Prior, Prior subclass or str
        As in :func:`estimate_solve_bytes`.
    method : str
        Solver name.
    n : int
        The most copies wanted (``>= 1``).
    device : str or torch.device or None
        Where the solve runs (``None``: the CPU).
    limit : int, float or str, optional
        A budget set on purpose (bytes, ``"8G"``, ``"off"``), as in :func:`pnpdiff.memory.memory_limit`.
    dtype : torch.dtype
        Dtype of the solver's tensors.
    extra : int
        Bytes the solve holds beyond the estimate, whatever ``k`` (e.g. SMC's stored particles).
    scale_y : bool
        Whether the measurement grows with ``k`` (``False``: SMC's particles share one ``y``).
    steps : int
        Length of the schedule (as in :func:`estimate_solve_bytes`; the same for every ``k``).

    Returns
    -------
    int
        ``1 <= k <= n``; 1 also when not even one copy fits (the caller's
        :func:`pnpdiff.memory.check_memory` then reports it); ``n`` without a limit.
    """
    cap, _ = memory_limit(device, limit)
    xs = tuple(int(v) for v in x_shape)
    ys = tuple(int(v) for v in y_shape)

    def need(k: int) -> int:
        y = (k * ys[0], *ys[1:]) if scale_y else ys
        return estimate_solve_bytes((k * xs[0], *xs[1:]), y, prior, method, dtype, steps=steps) + int(extra)

    return largest_batch(need, max(1, int(n)), cap)

