"""``pnpdiff.sample``: draw images from a prior, optionally of a class (guidance)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pnpdiff.errors import UnknownNameError
from pnpdiff.guidance import guided

__all__ = ["sample", "SAMPLERS"]

SAMPLERS = ("ddpm", "ddim", "euler", "heun")


def sample(prior: Any = "digits", n: int = 16, *, label: Any = None, cfg: float | None = None,
           classifier: Any = None, classifier_scale: float | None = None, method: str = "ddim",
           steps: int = 50, eta: float = 0.0, seed: int | None = None, sigmas: Tensor | None = None,
           device: torch.device | str | None = None, progress: bool = False, precision: str = "fp32",
           compile: bool = False) -> Tensor:
    """Draw ``n`` samples from a prior with one of the library's samplers.

    Parameters
    ----------
    prior : str or Prior
        Anything :func:`pnpdiff.load_prior` takes (default the shipped ``"digits"``); it must
        state a size (``prior.size``).
    n : int
        Number of samples.
    label : int or sequence of int, optional
        Class of every sample, or one per sample (a class-conditional prior, or a classifier).
    cfg : float, optional
        Classifier-free guidance weight ``w`` (Ho and Salimans 2021): ``(1 + w) D(x, c) - w D(x)``.
    classifier : str or module, optional
        Classifier guidance (Dhariwal and Nichol 2021): ``"digits"`` (shipped), a path to a
        ``classifier.pt``, or a loaded classifier. Without ``cfg`` it steers the unconditional model.
    classifier_scale : float, optional
        Classifier guidance scale ``s`` (default 1).
    method : {"ddim", "ddpm", "euler", "heun"}
        The sampler (:mod:`pnpdiff.solvers.samplers`).
    steps : int
        Number of steps of the default schedule (Karras et al.'s, ``rho = 7``, over the prior's
        sigma range).
    eta : float
        DDIM's stochasticity (``method="ddim"`` only).
    seed : int, optional
        Seed of the start and of the sampler's noise (the same seed gives the same samples).
    sigmas : Tensor, optional
        An explicit decreasing schedule instead of ``steps``.
    device : optional
        Default: CUDA when available.
    progress : bool
        Show a progress bar.
    precision, compile : optional
        How the network runs (``"fp32"``, ``"bf16"``, ``"fp16"`` on CUDA; ``torch.compile``), see
        :mod:`pnpdiff.priors.runtime`.

    Returns
    -------
    Tensor
        ``(n, C, H, W)`` in the prior's data range ([0, 1] for images), clipped to it.

    Raises
    ------
    UnknownNameError
        If ``method`` is not a sampler, or the prior states no image size.
    ValueRangeError
        If ``n`` (1 to :data:`pnpdiff.api.MAX_COUNT`), ``steps`` (1 to :data:`pnpdiff.api.MAX_STEPS`),
        ``seed``, ``eta`` or ``label`` is out of range.
    MemoryLimitError
        If ``n`` images of the prior's size do not fit the memory (checked before anything is drawn).
    NonFiniteError
        If the prior returns NaN or inf (the message names the prior and the sigma).

    References
    ----------
    J. Song, C. Meng and S. Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
    https://arxiv.org/abs/2010.02502

    J. Ho, A. Jain and P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    https://arxiv.org/abs/2006.11239

    T. Karras, M. Aittala, T. Aila and S. Laine, "Elucidating the Design Space of
    Diffusion-Based Generative Models", NeurIPS 2022. https://arxiv.org/abs/2206.00364

    J. Ho and T. Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 Workshop on Deep
    Generative Models and Downstream Applications. https://arxiv.org/abs/2207.12598

    P. Dhariwal and A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021.
    https://arxiv.org/abs/2105.05233
    """
    from pnpdiff.api import MAX_SEED, MAX_STEPS, check_int
    from pnpdiff.errors import ValueRangeError
    from pnpdiff.schedules import karras
    from pnpdiff.solvers import samplers as S
    from pnpdiff.solvers.common import FiniteGuard, check_finite_result

    if seed is not None:
        seed = check_int("seed", seed, minimum=0, maximum=MAX_SEED)
    if sigmas is not None:
        length = sigmas.numel() if torch.is_tensor(sigmas) else len(sigmas) if hasattr(sigmas, "__len__") else 0
        if not 1 < length <= MAX_STEPS + 1 or (torch.is_tensor(sigmas) and sigmas.device.type == "meta"):
            raise ValueRangeError(f"sigmas must be a decreasing tensor of 2 to {MAX_STEPS + 1} noise levels")
        steps = length - 1
    n, steps, dev, p, model = setup_sampling(prior, n, label, cfg, classifier, classifier_scale, method, steps, eta,
                                             device, precision, compile)
    model = FiniteGuard(model, f"sample ({method})")
    if sigmas is None:
        sigmas = karras(steps, sigma_min=max(p.sigma_min, 1e-4), sigma_max=p.sigma_max)
    g = torch.Generator(device="cpu")
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    x_T = p.start((n, p.channels, *p.size), float(sigmas[0]), g).to(dev)
    # the samplers' own noise: a generator on the device, seeded from the CPU one
    gd = torch.Generator(device=dev).manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
    fn = getattr(S, method)
    kw: dict[str, Any] = {"eta": float(eta)} if method == "ddim" else {}
    x = check_finite_result(fn(model, sigmas, x_T, generator=gd, progress=progress, **kw), f"sample ({method})")
    lo, hi = p.data_range if p.data_range is not None else (-float("inf"), float("inf"))
    return x.clamp(lo, hi)


def setup_sampling(prior: Any, n: int, label: Any, cfg: float | None, classifier: Any, classifier_scale: float | None,
           method: str, steps: int, eta: float, device: Any, precision: str = "fp32", compile: bool = False
           ) -> tuple[int, int, torch.device, Any, Any]:
    """:func:`sample`'s checks and set-up, everything before the first network call:
    ``(n, steps, device, prior, guided model)``."""
    from pnpdiff import costs, memory
    from pnpdiff.api import MAX_COUNT, MAX_STEPS, check_int, check_real, resolve_device
    from pnpdiff.priors import load_prior
    from pnpdiff.priors.runtime import with_runtime

    n = check_int("n", n, minimum=1, maximum=MAX_COUNT)
    steps = check_int("steps", steps, minimum=1, maximum=MAX_STEPS)
    check_real("eta", eta, minimum=0.0)
    if method not in SAMPLERS:
        raise UnknownNameError(f"unknown sampler {method!r}; choose one of {', '.join(SAMPLERS)}")
    dev = resolve_device(device, torch.zeros(()))
    p = load_prior(prior, device=dev)
    if p.size is None or p.channels is None:
        raise UnknownNameError(f"prior '{p.name}' states no image size; sample() needs a prior trained at one size "
                               "(e.g. 'digits' or a prior from pnpdiff train)")
    shape = (n, int(p.channels), *(int(v) for v in p.size))  # all n are drawn in one batch: refuse what cannot fit
    need = costs.estimate_solve_bytes(shape, None, p, method, steps=steps)
    memory.check_memory(need, dev, what=f"sampling {memory.describe_shape(shape)} with {method} and the "
                        f"'{p.name}' prior", smaller="fewer samples per call (n)")
    model = guided(with_runtime(p, precision, compile, dev), label=label, cfg=cfg, classifier=classifier,
                   classifier_scale=classifier_scale)
    return n, steps, dev, p, model
