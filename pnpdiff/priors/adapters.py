"""Adapters: wrap models trained in other parameterisations into the VE denoiser contract.

pnpdiff's prior contract is ``D(x, sigma) ~ E[x0 | x0 + sigma n = x]`` on [0, 1] images
(see ``ALGORITHMS.md``). Each adapter converts once, at the edge:

* :class:`EpsPrior` — VP / DDPM eps-prediction on [-1, 1] (Ho et al. 2020; ADM of Dhariwal and
  Nichol 2021): ``D(x, sigma) = x - sigma * eps_theta(sqrt(abar) (2x - 1), t(sigma))`` with
  ``abar = 1 / (1 + (2 sigma)^2)`` and a continuous timestep ``t(sigma)`` read off the model's
  own alpha-bar table.
* :class:`X0Prior` — VP x0-prediction on [-1, 1].
* :class:`EDMPrior` — EDM preconditioning (Karras et al. 2022) on [-1, 1], ``sigma_edm = 2 sigma``.
* :class:`DeepinvPrior` — a ``deepinv.models.Denoiser`` (already [0, 1] images, sigma in the same
  units).
* :class:`CallablePrior` — any ``(x, sigma) -> x0`` function in pnpdiff's units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from pnpdiff.errors import ShapeError, UnknownNameError
from pnpdiff.priors.base import Prior, as_sigma, check_data_moment, check_data_range

__all__ = [
    "ddpm_alphas_cumprod",
    "VPTable",
    "EpsPrior",
    "VPEpsPrior",
    "X0Prior",
    "EDMPrior",
    "DeepinvPrior",
    "CallablePrior",
]


def ddpm_alphas_cumprod(beta_start: float = 1e-4, beta_end: float = 0.02,
                        num_timesteps: int = 1000) -> Tensor:
    """Alpha-bar table of the linear-beta DDPM schedule (Ho et al. 2020), float64 ``(T,)``.

    ``abar_t = prod_{s <= t} (1 - beta_s)`` with ``beta`` linear from ``beta_start`` to
    ``beta_end``; index ``t = 0 .. T-1`` as in guided-diffusion.

    Parameters
    ----------
    beta_start, beta_end : float
        First and last ``beta_t``.
    num_timesteps : int
        Number of timesteps ``T``.

    Returns
    -------
    Tensor
        float64 ``abar_t``, shape ``(T,)``.

    References
    ----------
    J. Ho, A. Jain and P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    https://arxiv.org/abs/2006.11239
    """
    betas = torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation (``numpy.interp``; ``xp`` increasing), clamped at the ends."""
    x = x.clamp(xp[0], xp[-1])
    i = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    x0, x1 = xp[i - 1], xp[i]
    f0, f1 = fp[i - 1], fp[i]
    w = (x - x0) / (x1 - x0)
    return f0 + w * (f1 - f0)


class VPTable(nn.Module):
    """The sigma <-> timestep map of a VP model, from its alpha-bar table.

    In pnpdiff's units a VP step ``t`` has ``sigma_t = sqrt((1 - abar_t) / abar_t) / 2``
    (the ``/ 2`` is the [-1, 1] -> [0, 1] change). Between table entries, ``log sigma`` is linear
    in ``t`` (equivalently, log-SNR is linear in ``t``); :meth:`t_of_sigma` and
    :meth:`sigma_of_t` are exact inverses of each other on ``[0, T-1]``.

    Parameters
    ----------
    alphas_cumprod : Tensor
        ``(T,)`` decreasing alpha-bar table, index ``t = 0 .. T-1``.

    Raises
    ------
    ShapeError
        If the table has fewer than 2 values or is not strictly decreasing.
    """

    def __init__(self, alphas_cumprod: Tensor) -> None:
        super().__init__()
        abar = torch.as_tensor(alphas_cumprod, dtype=torch.float64).flatten()
        if abar.numel() < 2 or not bool((abar[1:] < abar[:-1]).all()):
            raise ShapeError("alphas_cumprod must be a strictly decreasing table of >= 2 values")
        log_sigma = 0.5 * torch.log((1 - abar) / abar) - math.log(2.0)
        self.register_buffer("alphas_cumprod", abar)
        self.register_buffer("log_sigmas", log_sigma)
        self.register_buffer("steps", torch.arange(abar.numel(), dtype=torch.float64))

    @property
    def num_timesteps(self) -> int:
        """Number of timesteps ``T`` of the table."""
        return int(self.alphas_cumprod.numel())

    @property
    def sigma_min(self) -> float:
        """Sigma ([0, 1] units) of timestep 0, the smallest of the table."""
        return float(self.log_sigmas[0].exp())

    @property
    def sigma_max(self) -> float:
        """Sigma ([0, 1] units) of timestep ``T - 1``, the largest of the table."""
        return float(self.log_sigmas[-1].exp())

    def t_of_sigma(self, sigma: Tensor) -> Tensor:
        """Continuous timestep for ``sigma`` ([0, 1] units), clamped to ``[0, T-1]``; float64.

        Parameters
        ----------
        sigma : Tensor or float
            Noise level(s) in [0, 1] units.

        Returns
        -------
        Tensor
            float64 timesteps in ``[0, T-1]``, shape of ``sigma``.
        """
        s = torch.as_tensor(sigma, dtype=torch.float64, device=self.log_sigmas.device)
        ls = torch.log(s.clamp_min(1e-30))
        return _interp(ls, self.log_sigmas, self.steps)

    def sigma_of_t(self, t: Tensor) -> Tensor:
        """Sigma ([0, 1] units) of a continuous timestep ``t``; float64.

        Parameters
        ----------
        t : Tensor or float
            Continuous timestep(s), clamped to ``[0, T-1]``.

        Returns
        -------
        Tensor
            float64 sigmas, shape of ``t``.
        """
        tt = torch.as_tensor(t, dtype=torch.float64, device=self.log_sigmas.device)
        return _interp(tt, self.steps, self.log_sigmas).exp()


def _model_dtype(model: Any, default: torch.dtype) -> torch.dtype:
    if isinstance(model, nn.Module):
        for p in model.parameters():
            if p.is_floating_point():
                return p.dtype
    return default


class _Meta:
    """Shared handling of the descriptive attributes of wrapped priors."""

    @staticmethod
    def apply(prior: Prior, *, sigma_min: float | None, sigma_max: float | None,
              channels: int | None, size: tuple[int, int] | None, name: str | None,
              data_mean: float | Tensor | None = None, data_var: float | Tensor | None = None) -> None:
        if sigma_min is not None:
            prior.sigma_min = float(sigma_min)
        if sigma_max is not None:
            prior.sigma_max = float(sigma_max)
        if channels is not None:
            prior.channels = int(channels)
        if size is not None:
            prior.size = (int(size[0]), int(size[1]))
        if name is not None:
            prior.name = name
        prior.data_mean = check_data_moment(data_mean, "data_mean")
        prior.data_var = check_data_moment(data_var, "data_var", non_negative=True)


class _VPPrior(Prior):
    """Common part of VP-parameterised models (eps or x0 prediction) on [-1, 1]."""

    def __init__(self, model: Callable[..., Tensor], alphas_cumprod: Tensor | None = None, *,
                 learned_variance: bool | None = None, model_kwargs: dict | None = None,
                 sigma_min: float | None = None, sigma_max: float | None = None,
                 channels: int | None = None, size: tuple[int, int] | None = None,
                 name: str | None = None, data_mean: float | Tensor | None = None,
                 data_var: float | Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.table = VPTable(ddpm_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod)
        self.learned_variance = learned_variance
        self.model_kwargs = dict(model_kwargs or {})
        _Meta.apply(self, sigma_min=self.table.sigma_min if sigma_min is None else sigma_min,
                    sigma_max=self.table.sigma_max if sigma_max is None else sigma_max,
                    channels=channels, size=size, name=name, data_mean=data_mean, data_var=data_var)

    def timestep(self, sigma: float | Tensor) -> Tensor:
        """Continuous model timestep for ``sigma`` ([0, 1] units), float64.

        Parameters
        ----------
        sigma : float or Tensor
            Noise level(s) in [0, 1] units.

        Returns
        -------
        Tensor
            float64 timesteps in ``[0, T-1]``.
        """
        return self.table.t_of_sigma(torch.as_tensor(sigma))

    def _run(self, x: Tensor, sigma: float | Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(model output with C channels, s (B,1,..) in x.dtype, x_vp)``."""
        self.check_image(x)
        s = as_sigma(sigma, x)
        shape = (-1,) + (1,) * (x.ndim - 1)
        abar = 1.0 / (1.0 + (2.0 * s) ** 2)
        x_vp = abar.sqrt().view(shape) * (2.0 * x - 1.0)
        t = self.table.t_of_sigma(s.detach())
        mdtype = _model_dtype(self.model, x.dtype)
        out = self.model(x_vp.to(mdtype), t.to(device=x.device, dtype=mdtype), **self.model_kwargs)
        out = out.to(x.dtype)
        c = x.shape[1]
        lv = self.learned_variance
        if (lv is None and out.shape[1] == 2 * c) or lv:
            out = out[:, :c]
        if out.shape != x.shape:
            raise ShapeError(
                f"prior '{self.name}': model returned shape {tuple(out.shape)} for input "
                f"{tuple(x.shape)}"
            )
        return out, s.view(shape), x_vp


class EpsPrior(_VPPrior):
    r"""VP (DDPM) eps-prediction model on [-1, 1] images as a VE denoiser on [0, 1].

    .. math::
        D(x, \sigma) = x - \sigma\, \epsilon_\theta\big(\sqrt{\bar\alpha}\,(2x - 1),\
        t(\sigma)\big), \qquad \bar\alpha = \frac{1}{1 + (2\sigma)^2},

    which follows from ``x_t = sqrt(abar) x0' + sqrt(1 - abar) eps`` with ``x0' = 2 x0 - 1``
    (Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020; ``ALGORITHMS.md``).
    ``t(sigma)`` is a *continuous* timestep interpolated on the model's own alpha-bar table
    (:class:`VPTable`); ADM / guided-diffusion networks embed timesteps sinusoidally and accept
    float timesteps. ``sigma`` outside the table's range is evaluated at the nearest end of the
    table (with the exact ``abar`` of ``sigma`` in the input scaling).

    Parameters
    ----------
    model : callable
        ``model(x_vp, t, **model_kwargs) -> eps`` with ``x_vp`` ``(B, C, H, W)`` and ``t`` a
        ``(B,)`` float tensor in timestep units. Outputs with ``2 C`` channels (learned variance,
        Nichol and Dhariwal 2021) are reduced to the first ``C``.
    alphas_cumprod : Tensor, optional
        The model's alpha-bar table; default linear betas 1e-4 .. 0.02, T = 1000.
    learned_variance : bool, optional
        Force dropping (True) or keeping (False) the second half of the channels; default: drop
        when the model returns ``2 C`` channels.
    model_kwargs : dict, optional
        Extra keyword arguments for every model call (e.g. class labels).
    sigma_min, sigma_max : float, optional
        Valid range; default that of the table (0.005 .. 78.7 for the default table).
    channels, size, name
        Descriptive attributes (see :class:`~pnpdiff.priors.Prior`).
    data_mean, data_var : float or Tensor, optional
        Mean and per-coordinate variance of the clean data (numbers, or tensors broadcasting to
        one sample such as ``(C, 1, 1)``); the samplers start from ``N(data_mean, sigma_T^2 +
        data_var)``. Default: the middle of the data range, no variance (see
        :class:`~pnpdiff.priors.Prior`).

    References
    ----------
    J. Ho, A. Jain and P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    https://arxiv.org/abs/2006.11239

    P. Dhariwal and A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021.
    https://arxiv.org/abs/2105.05233
    """

    name = "eps-model"

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        eps, s, _ = self._run(x, sigma)
        return x - s * eps

    def eps(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """The network's noise prediction directly (exact at ``sigma = 0`` too)."""
        return self._run(x, sigma)[0]


VPEpsPrior = EpsPrior


class X0Prior(_VPPrior):
    r"""VP x0-prediction model on [-1, 1] images as a VE denoiser on [0, 1].

    ``D(x, sigma) = (x0_theta(sqrt(abar) (2x - 1), t(sigma)) + 1) / 2``, with ``abar`` and
    ``t(sigma)`` as in :class:`EpsPrior` (same parameters).

    Parameters
    ----------
    model : callable
        ``model(x_vp, t, **model_kwargs) -> x0`` on [-1, 1] (see :class:`EpsPrior` for ``x_vp``
        and ``t``).
    alphas_cumprod, learned_variance, model_kwargs, sigma_min, sigma_max, channels, size, name, data_mean, data_var
        As for :class:`EpsPrior`.
    """

    name = "x0-model"

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        x0, _, _ = self._run(x, sigma)
        return (x0 + 1.0) / 2.0


class EDMPrior(Prior):
    r"""EDM-preconditioned network (Karras et al., "Elucidating the Design Space of
    Diffusion-Based Generative Models", NeurIPS 2022) as a VE denoiser on [0, 1].

    EDM works on [-1, 1] images in VE form, so ``x_edm = 2x - 1`` and ``sigma_edm = 2 sigma``:

    .. math::
        D_{edm}(x, s) = c_{skip}(s)\,x + c_{out}(s)\,F_\theta\big(c_{in}(s)\,x,\ c_{noise}(s)\big),

    ``c_skip = sd^2 / (s^2 + sd^2)``, ``c_out = s sd / sqrt(s^2 + sd^2)``,
    ``c_in = 1 / sqrt(s^2 + sd^2)``, ``c_noise = ln(s) / 4`` (``sd = sigma_data``), and
    ``D(x, sigma) = (D_edm(2x - 1, 2 sigma) + 1) / 2``.

    Parameters
    ----------
    model : callable
        With ``precondition=True`` the raw network ``F(x_in, c_noise)``; with
        ``precondition=False`` an already preconditioned denoiser ``D_edm(x_edm, sigma_edm)``
        (e.g. EDM's ``EDMPrecond``).
    sigma_data : float
        ``sigma_data`` of the training data in [-1, 1] units (0.5 in EDM).
    precondition : bool
        Whether ``model`` is the raw network (apply EDM's preconditioning) or already ``D_edm``.
    model_kwargs : dict, optional
        Extra keyword arguments for every model call (e.g. class labels).
    sigma_min, sigma_max : float
        Valid range in pnpdiff's [0, 1] units; default EDM's [0.002, 80] halved.
    channels, size, name
        Descriptive attributes (see :class:`~pnpdiff.priors.Prior`).
    data_mean, data_var : float or Tensor, optional
        Mean and per-coordinate variance of the clean data (numbers, or tensors broadcasting to
        one sample such as ``(C, 1, 1)``); the samplers start from ``N(data_mean, sigma_T^2 +
        data_var)``. Default: the middle of the data range, no variance (see
        :class:`~pnpdiff.priors.Prior`).

    References
    ----------
    T. Karras, M. Aittala, T. Aila and S. Laine, "Elucidating the Design Space of
    Diffusion-Based Generative Models", NeurIPS 2022. https://arxiv.org/abs/2206.00364
    """

    name = "edm-model"

    def __init__(self, model: Callable[..., Tensor], sigma_data: float = 0.5, *,
                 precondition: bool = True, model_kwargs: dict | None = None,
                 sigma_min: float | None = 0.001, sigma_max: float | None = 40.0,
                 channels: int | None = None, size: tuple[int, int] | None = None,
                 name: str | None = None, data_mean: float | Tensor | None = None,
                 data_var: float | Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.sigma_data = float(sigma_data)
        self.precondition = precondition
        self.model_kwargs = dict(model_kwargs or {})
        _Meta.apply(self, sigma_min=sigma_min, sigma_max=sigma_max, channels=channels, size=size,
                    name=name, data_mean=data_mean, data_var=data_var)

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        self.check_image(x)
        shape = (-1,) + (1,) * (x.ndim - 1)
        s = 2.0 * as_sigma(sigma, x)
        xe = 2.0 * x - 1.0
        mdtype = _model_dtype(self.model, x.dtype)
        if not self.precondition:
            d = self.model(xe.to(mdtype), s.to(mdtype), **self.model_kwargs).to(x.dtype)
        else:
            sd = self.sigma_data
            sv = s.view(shape)
            c_skip = sd**2 / (sv**2 + sd**2)
            c_out = sv * sd / (sv**2 + sd**2).sqrt()
            c_in = 1.0 / (sv**2 + sd**2).sqrt()
            c_noise = torch.log(s.clamp_min(1e-20)) / 4.0
            f = self.model((c_in * xe).to(mdtype), c_noise.to(mdtype), **self.model_kwargs)
            d = c_skip * xe + c_out * f.to(x.dtype)
        return (d + 1.0) / 2.0


class DeepinvPrior(Prior):
    """A ``deepinv.models.Denoiser`` (DRUNet, DiffUNet, BM3D, ...) as a pnpdiff prior.

    deepinv denoisers take images in [0, 1] and the noise standard deviation in the same units
    (``Denoiser.forward(x, sigma)``, sigma a float or a ``(B,)`` tensor), which are pnpdiff's
    units, so no conversion is needed; ``DiffUNet`` in its default ``type_t="noise_level"`` mode
    does the VP conversion internally (nearest integer timestep).

    Parameters
    ----------
    denoiser : deepinv.models.Denoiser
        The model.
    sigma_arg : callable, optional
        Maps pnpdiff's ``(B,)`` sigma tensor to the denoiser's second argument, for models whose
        parameter is not a noise level (e.g. the threshold of ``TVDenoiser`` or
        ``WaveletDenoiser``).
    sigma_min, sigma_max, channels, size, name
        Descriptive attributes (e.g. DRUNet was trained for sigma up to 50/255).
    data_range : tuple of float or None
        Range of the clean data, default ``(0.0, 1.0)`` (deepinv's denoisers are image
        denoisers); ``None`` for a denoiser of data that live anywhere (see
        :class:`~pnpdiff.priors.Prior`).
    data_mean, data_var : float or Tensor, optional
        Mean and per-coordinate variance of the clean data (numbers, or tensors broadcasting to
        one sample such as ``(C, 1, 1)``); the samplers start from ``N(data_mean, sigma_T^2 +
        data_var)``. Default: the middle of the data range, no variance (see
        :class:`~pnpdiff.priors.Prior`).
    """

    name = "deepinv"

    def __init__(self, denoiser: nn.Module, *, sigma_arg: Callable[[Tensor], Any] | None = None,
                 sigma_min: float | None = None, sigma_max: float | None = None,
                 channels: int | None = None, size: tuple[int, int] | None = None,
                 name: str | None = None,
                 data_range: tuple[float, float] | None = (0.0, 1.0),
                 data_mean: float | Tensor | None = None, data_var: float | Tensor | None = None) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.sigma_arg = sigma_arg
        self.data_range = check_data_range(data_range)
        _Meta.apply(self, sigma_min=sigma_min, sigma_max=sigma_max, channels=channels, size=size,
                    name=name or f"deepinv:{type(denoiser).__name__}", data_mean=data_mean, data_var=data_var)

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        self.check_image(x)
        s = as_sigma(sigma, x)
        arg = self.sigma_arg(s) if self.sigma_arg is not None else s
        mdtype = _model_dtype(self.denoiser, x.dtype)
        if isinstance(arg, Tensor) and arg.is_floating_point():
            arg = arg.to(mdtype)
        return self.denoiser(x.to(mdtype), arg).to(x.dtype)


def _check_two_arguments(fn: Callable[..., Any]) -> None:
    """Raise :class:`~pnpdiff.UnknownNameError` (as for any prior pnpdiff cannot use) when ``fn``
    cannot be called as ``fn(x, sigma)``; a callable whose signature Python cannot read passes."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(None, None)
    except TypeError:
        label = getattr(fn, "__qualname__", type(fn).__name__)
        raise UnknownNameError(f"prior: a function prior is called as f(x, sigma) -> x0 (sigma a (B,) tensor); "
                               f"{label}{sig} cannot take those two arguments") from None


class CallablePrior(Prior):
    """Any function ``f(x, sigma) -> x0`` in pnpdiff's units ([0, 1] images, VE sigma).

    ``sigma`` is passed as a ``(B,)`` tensor on ``x``'s device and dtype.

    Parameters
    ----------
    fn : callable
        The denoiser ``f(x, sigma) -> x0`` (same shape as ``x``).
    sigma_min, sigma_max, channels, size, name
        Descriptive attributes (see :class:`~pnpdiff.priors.Prior`).
    data_range : tuple of float or None
        Range of the clean data: ``(0.0, 1.0)`` (the default) for an image denoiser, another
        ``(lo, hi)``, or ``None`` when the data live anywhere (a scientific prior): then
        :func:`pnpdiff.solve` neither checks the measurement's range nor clips the result.
    data_mean, data_var : float or Tensor, optional
        Mean and per-coordinate variance of the clean data (numbers, or tensors broadcasting to
        one sample such as ``(C, 1, 1)``); the samplers start from ``N(data_mean, sigma_T^2 +
        data_var)``. Default: the middle of the data range, no variance (see
        :class:`~pnpdiff.priors.Prior`).
    """

    name = "callable"

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], *, sigma_min: float | None = None,
                 sigma_max: float | None = None, channels: int | None = None,
                 size: tuple[int, int] | None = None, name: str | None = None,
                 data_range: tuple[float, float] | None = (0.0, 1.0),
                 data_mean: float | Tensor | None = None, data_var: float | Tensor | None = None) -> None:
        super().__init__()
        _check_two_arguments(fn)
        self.fn = fn
        self.data_range = check_data_range(data_range)
        _Meta.apply(self, sigma_min=sigma_min, sigma_max=sigma_max, channels=channels, size=size,
                    name=name or getattr(fn, "__name__", "callable"), data_mean=data_mean, data_var=data_var)

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        self.check_image(x)
        out = self.fn(x, as_sigma(sigma, x))
        if not isinstance(out, Tensor) or out.shape != x.shape:
            raise ShapeError(
                f"prior '{self.name}': the function must return a tensor of shape "
                f"{tuple(x.shape)}, got {getattr(out, 'shape', type(out).__name__)}"
            )
        return out
