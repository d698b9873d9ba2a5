"""Analytic priors: Gaussians and Gaussian mixtures, with exact MMSE denoisers and posteriors.

Under a Gaussian-mixture prior ``x0 ~ sum_k w_k N(mu_k, S_k)`` and the variance-exploding
observation ``x = x0 + sigma * n``, everything a diffusion solver needs is known in closed form:

* ``p_sigma(x) = sum_k w_k N(x; mu_k, S_k + sigma^2 I)``,
* the MMSE denoiser ``D(x, sigma) = sum_k r_k(x) [mu_k + S_k (S_k + sigma^2 I)^{-1} (x - mu_k)]``
  with responsibilities ``r_k(x)`` proportional to ``w_k N(x; mu_k, S_k + sigma^2 I)``,
* for a linear measurement ``y = A x0 + sigma_y n`` the posterior is again a Gaussian mixture
  (:func:`exact_posterior`).

These are the references against which pnpdiff's adapters and solvers are tested, following the
Gaussian-mixture experiments of Cardoso et al., "Monte Carlo guided diffusion for Bayesian linear
inverse problems" (MCGdiff, ICLR 2024), whose set-up :func:`mcgdiff_mixture` and
:func:`random_svd_operator` reproduce.

All linear algebra is done in float64 on an eigendecomposition of each covariance computed once,
so the denoiser is exact and stable at every sigma (including singular covariances); results are
cast back to the input's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from pnpdiff.errors import ShapeError, ValueRangeError
from pnpdiff.priors.base import GeneratorLike, Prior, as_sigma, standard_normal

__all__ = [
    "GaussianMixturePrior",
    "GaussianPrior",
    "exact_posterior",
    "operator_matrix",
    "mcgdiff_mixture",
    "random_svd_operator",
]

_F64 = torch.float64


def _as_f64(t: Any) -> Tensor:
    t = torch.as_tensor(t)
    return t.to(_F64) if t.dtype != _F64 else t


class GaussianMixturePrior(Prior):
    r"""Gaussian-mixture prior ``sum_k w_k N(mu_k, S_k)`` with its exact MMSE denoiser.

    Parameters
    ----------
    weights : Tensor, shape ``(K,)``
        Non-negative mixture weights (normalised here).
    means : Tensor, shape ``(K, d)`` or ``(K, C, H, W)`` (any ``(K, *shape)``)
        Component means. ``shape = means.shape[1:]`` is the shape of one sample; with
        ``(C, H, W)`` the prior acts on images ``(B, C, H, W)``.
    covs : Tensor or float
        Component covariances: ``(K, d, d)`` full, ``(K, d)`` diagonal, ``(K,)`` isotropic per
        component, a single ``(d, d)`` shared matrix, or a number (shared isotropic variance).
        Covariances may be singular (positive semi-definite). When ``K == d`` a 2-D array is
        read as one shared ``(d, d)`` matrix; pass per-component diagonals as
        ``torch.diag_embed(diagonals)`` then.

    Notes
    -----
    ``denoise(x, sigma)`` accepts ``x`` of shape ``(B, *shape)`` or ``(B, d)`` and returns the same
    shape; ``sigma`` is a number or one value per batch element, in the same units as ``x``. The
    data live anywhere (``data_range = None``): :func:`pnpdiff.solve` neither checks the
    measurement against [0, 1] nor clips its result. The
    computation is vectorised over the batch and the components (cost ``O(B K d^2)``), in float64,
    with log-sum-exp responsibilities. ``sigma = 0`` returns ``x``.

    References
    ----------
    G. Cardoso, Y. Janati El Idrissi, S. Le Corff and E. Moulines, "Monte Carlo guided
    Diffusion for Bayesian linear inverse problems", ICLR 2024. https://arxiv.org/abs/2308.07983
    (the mixture benchmark used by many posterior-sampling papers).
    """

    name = "gmm"
    #: not an image prior: no range is declared, nothing is checked or clipped
    data_range = None

    def __init__(self, weights: Tensor | Sequence[float], means: Tensor, covs: Tensor | float,
                 *, name: str | None = None) -> None:
        super().__init__()
        w = _as_f64(weights).flatten()
        mu = _as_f64(means)
        if mu.ndim < 2 or mu.shape[0] != w.numel():
            raise ShapeError(
                f"means must have shape (K, *shape) with K = len(weights) = {w.numel()}, "
                f"got {tuple(mu.shape)}"
            )
        if (w < 0).any() or not torch.isfinite(w).all() or w.sum() <= 0:
            raise ValueRangeError("mixture weights must be finite, non-negative and not all zero")
        k = w.numel()
        self.shape: tuple[int, ...] = tuple(mu.shape[1:])
        d = math.prod(self.shape)
        self.dim = d
        mu = mu.reshape(k, d)
        evals, evecs = self._decompose(covs, k, d, mu.device)
        if (evals < -1e-10 * evals.abs().amax().clamp_min(1.0)).any():
            raise ValueRangeError("covariances must be positive semi-definite")
        self.register_buffer("weights", w / w.sum())
        self.register_buffer("means", mu)
        self.register_buffer("evals", evals.clamp_min(0.0))  # (K, d)
        # evecs: (K, d, d) or None for diagonal covariances (eigenbasis = canonical basis)
        self.register_buffer("evecs", evecs)
        if name is not None:
            self.name = name
        if len(self.shape) == 3:
            self.channels = self.shape[0]
            self.size = (self.shape[1], self.shape[2])

    @staticmethod
    def _decompose(covs: Tensor | float, k: int, d: int,
                   device: torch.device) -> tuple[Tensor, Tensor | None]:
        c = _as_f64(covs).to(device)
        if c.ndim == 0:
            return c.expand(k, d).clone(), None
        if c.ndim == 1 and c.shape[0] == k:
            return c[:, None].expand(k, d).clone(), None
        if c.ndim == 2 and c.shape == (d, d):  # checked first: (d, d) wins when K == d
            c = c.expand(k, d, d)
        elif c.ndim == 2 and c.shape == (k, d):
            return c.clone(), None
        if c.ndim == 3 and c.shape == (k, d, d):
            c = 0.5 * (c + c.transpose(-1, -2))
            evals, evecs = torch.linalg.eigh(c)
            return evals, evecs
        raise ShapeError(
            f"covs must be (K, d, d), (K, d), (K,), (d, d) or a number with K={k}, d={d}; "
            f"got {tuple(c.shape)}"
        )

    # ------------------------------------------------------------------ helpers
    @property
    def n_components(self) -> int:
        """Number of mixture components ``K``."""
        return int(self.weights.numel())

    def covariances(self) -> Tensor:
        """Dense component covariances, ``(K, d, d)`` float64.

        Returns
        -------
        Tensor
            ``(K, d, d)`` float64.
        """
        if self.evecs is None:
            return torch.diag_embed(self.evals)
        return (self.evecs * self.evals[:, None, :]) @ self.evecs.transpose(-1, -2)

    def _flat(self, x: Tensor) -> Tensor:
        if x.ndim < 1 or x[0].numel() != self.dim:
            raise ShapeError(
                f"prior '{self.name}' acts on samples of shape {self.shape} (d={self.dim}); "
                f"got a batch of shape {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], self.dim)

    def _rotate(self, v: Tensor) -> Tensor:
        """Coordinates in each component's eigenbasis: ``(B, K, d) -> U_k^T v``."""
        if self.evecs is None:
            return v
        return torch.einsum("kji,bkj->bki", self.evecs, v)

    def _unrotate(self, z: Tensor) -> Tensor:
        if self.evecs is None:
            return z
        return torch.einsum("kij,bkj->bki", self.evecs, z)

    def _component_terms(self, x: Tensor, s2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """For flat float64 ``x`` ``(B, d)`` and variances ``s2`` ``(B,)``: log responsibilities
        (unnormalised, ``(B, K)``), eigen-coordinates ``z`` and total variances ``lam + s2``."""
        z = self._rotate(x[:, None, :] - self.means[None])  # (B, K, d)
        var = self.evals[None] + s2[:, None, None]  # (B, K, d)
        logp = -0.5 * ((z * z) / var + torch.log(var)).sum(-1) - 0.5 * self.dim * math.log(
            2 * math.pi
        )
        return torch.log(self.weights)[None] + logp, z, var

    # ------------------------------------------------------------------ the contract
    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Exact posterior mean ``E[x0 | x0 + sigma * n = x]``, same shape and dtype as ``x``."""
        xf = self._flat(x).to(_F64)
        s = as_sigma(sigma, x).to(_F64)
        if (s < 0).any():
            raise ValueRangeError("sigma must be non-negative")
        s2 = s * s
        logr, z, var = self._component_terms(xf, s2.clamp_min(1e-300))
        r = torch.softmax(logr, dim=-1)  # (B, K)
        gain = torch.where(var > 0, self.evals[None] / var, torch.ones_like(var))
        cond = self.means[None] + self._unrotate(gain * z)  # (B, K, d)
        out = (r[..., None] * cond).sum(1)
        out = torch.where((s2 == 0)[:, None], xf, out)
        return out.to(x.dtype).reshape(x.shape)

    def log_prob(self, x: Tensor, sigma: float | Tensor = 0.0) -> Tensor:
        """``log p_sigma(x)`` of the noised prior (``sigma = 0``: the prior itself), ``(B,)``.

        With singular covariances and ``sigma = 0`` the density does not exist (``-inf``/``nan``).

        Parameters
        ----------
        x : Tensor
            Points, ``(B, *shape)`` or ``(B, d)``.
        sigma : float or Tensor
            Noise level (a number or one per batch element).

        Returns
        -------
        Tensor
            ``(B,)`` log densities, dtype of ``x``.
        """
        xf = self._flat(x).to(_F64)
        s = as_sigma(sigma, x).to(_F64)
        logr, _, _ = self._component_terms(xf, s * s)
        return torch.logsumexp(logr, dim=-1).to(x.dtype)

    def responsibilities(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Posterior component probabilities ``P(k | x)`` under ``x = x0 + sigma n``, ``(B, K)``.

        Parameters
        ----------
        x : Tensor
            Noisy points, ``(B, *shape)`` or ``(B, d)``.
        sigma : float or Tensor
            Noise level (a number or one per batch element).

        Returns
        -------
        Tensor
            ``(B, K)`` float64 probabilities (rows sum to one).
        """
        xf = self._flat(x).to(_F64)
        s = as_sigma(sigma, x).to(_F64)
        logr, _, _ = self._component_terms(xf, (s * s).clamp_min(1e-300))
        return torch.softmax(logr, dim=-1)

    # ------------------------------------------------------------------ moments and samples
    def mean(self, dtype: torch.dtype | None = None) -> Tensor:
        """Mixture mean ``sum_k w_k mu_k``, shape ``shape`` (float64 unless ``dtype`` given).

        Parameters
        ----------
        dtype : torch.dtype, optional
            Output dtype (default float64).

        Returns
        -------
        Tensor
            The mean, shape ``shape``.
        """
        m = (self.weights[:, None] * self.means).sum(0).reshape(self.shape)
        return m if dtype is None else m.to(dtype)

    def covariance(self) -> Tensor:
        """Mixture covariance ``(d, d)`` float64 (law of total covariance).

        Returns
        -------
        Tensor
            ``(d, d)`` float64.
        """
        m = self.mean().flatten()
        dm = self.means - m
        within = (self.weights[:, None, None] * self.covariances()).sum(0)
        between = (self.weights[:, None] * dm).T @ dm
        return within + between

    def data_moments(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """The exact mixture mean and per-coordinate variance, broadcast to ``like``."""
        kw = {"device": like.device, "dtype": like.dtype}
        m = self.mean().reshape(self.shape).to(**kw)
        v = torch.diagonal(self.covariance()).reshape(self.shape).to(**kw)
        return m.expand_as(like), v.expand_as(like)

    def start(self, shape: Sequence[int], sigma: float, generator: GeneratorLike = None,
              device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Tensor:
        """Draw ``x_T ~ N(m, S + sigma^2 I)``: the mixture's exact mean ``m`` and covariance ``S``
        (the first two moments of ``p_sigma``; ``p_sigma`` itself for a single Gaussian).

        The full covariance is used up to ``d = 2048`` (a Cholesky factor in float64); beyond
        that the per-coordinate variance (``diag S``), as for any prior.

        Parameters
        ----------
        shape : sequence of int
            ``(B, *sample_shape)``.
        sigma : float
            Noise level of the start (the schedule's first sigma).
        generator : torch.Generator or sequence of torch.Generator, optional
            Source of the noise; a sequence gives image ``b`` its noise from ``generator[b]``.
        device, dtype : optional
            Of the result (default: the generator's device, the default dtype).

        Returns
        -------
        Tensor
            The starting point, ``shape``.
        """
        n = standard_normal(shape, generator, device, dtype)
        if n.ndim < 2 or math.prod(n.shape[1:]) != self.dim:
            raise ShapeError(f"prior '{self.name}' draws samples of shape (B, *{self.shape}) or (B, {self.dim}), "
                             f"got {tuple(n.shape)}")
        if self.dim > 2048:
            return super().start(shape, sigma, generator, device, dtype)
        cov = self.covariance() + float(sigma) ** 2 * torch.eye(self.dim, dtype=_F64, device=self.means.device)
        chol = torch.linalg.cholesky(cov).to(n.device)
        x = self.mean().flatten().to(n.device) + n.reshape(n.shape[0], -1).to(_F64) @ chol.T
        return x.reshape(n.shape).to(n.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None) -> Tensor:
        """Draw ``n`` independent samples, shape ``(n, *shape)`` (float64 unless ``dtype`` given).

        Parameters
        ----------
        n : int
            Number of samples.
        generator : torch.Generator, optional
            Source of randomness (on the prior's device); the same seed gives the same samples.
        dtype : torch.dtype, optional
            Output dtype; the computation is float64.

        Returns
        -------
        Tensor
            ``(n, *shape)`` samples.
        """
        dev = self.weights.device
        idx = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, device=dev, dtype=_F64)
        z = eps * self.evals[idx].sqrt()
        if self.evecs is not None:
            z = torch.einsum("nij,nj->ni", self.evecs[idx], z)
        out = (self.means[idx] + z).reshape(n, *self.shape)
        return out if dtype is None else out.to(dtype)

    def extra_repr(self) -> str:
        return f"K={self.n_components}, shape={self.shape}"


class GaussianPrior(GaussianMixturePrior):
    """Gaussian prior ``N(mean, cov)`` with its exact (linear) MMSE denoiser.

    ``D(x, sigma) = mean + cov (cov + sigma^2 I)^{-1} (x - mean)`` (Wiener filter).

    Parameters
    ----------
    mean : Tensor, shape ``(d,)`` or ``(C, H, W)`` (any ``shape``)
        Mean; its shape is the shape of one sample.
    cov : Tensor or float
        ``(d, d)`` covariance, ``(d,)`` diagonal, or a number (isotropic variance).
    """

    name = "gaussian"

    def __init__(self, mean: Tensor, cov: Tensor | float, *, name: str | None = None) -> None:
        mu = _as_f64(mean)
        d = mu.numel()
        c = _as_f64(cov)
        if c.ndim == 2 and c.shape == (d, d):
            c = c[None]
        elif c.ndim == 1 and c.numel() == d:
            c = c[None]
        elif c.ndim == 0:
            pass
        else:
            raise ShapeError(
                f"cov must be (d, d), (d,) or a number with d={d}; got {tuple(c.shape)}"
            )
        super().__init__(torch.ones(1, dtype=_F64), mu[None], c, name=name)


# ---------------------------------------------------------------------- posteriors
def operator_matrix(A: Any, shape: Sequence[int] | None = None, d: int | None = None) -> Tensor:
    """Dense float64 matrix ``(d_y, d)`` of a linear operator.

    Accepts a tensor / array, an object carrying its matrix as an attribute (``M``, ``matrix``,
    ``A``, ``weight`` — e.g. ``pnpdiff.operators.Matrix``), or any linear callable, which is
    applied to the identity basis reshaped to ``(d, *shape)``.
    """
    if isinstance(A, Tensor) or hasattr(A, "__array__") and not callable(A):
        M = _as_f64(A)
    else:
        M = None
        for attr in ("M", "matrix", "A", "weight"):
            v = getattr(A, attr, None)
            if isinstance(v, Tensor) and v.ndim == 2:
                M = _as_f64(v.detach())
                break
        if M is None:
            if not callable(A):
                raise ShapeError(f"cannot use {type(A).__name__} as a linear operator")
            if shape is None:
                if d is None:
                    raise ShapeError("operator_matrix needs the sample shape of a callable")
                shape = (d,)
            dd = math.prod(shape)
            dtype = torch.get_default_dtype()
            for p in getattr(A, "parameters", lambda: [])():
                dtype = p.dtype
                break
            for b in getattr(A, "buffers", lambda: [])():
                if b.is_floating_point():
                    dtype = b.dtype
                    break
            eye = torch.eye(dd, dtype=_F64).reshape(dd, *shape)
            try:
                cols = A(eye)
            except (RuntimeError, TypeError):
                cols = A(eye.to(dtype))
            M = _as_f64(cols.detach()).reshape(dd, -1).T
    if M.ndim != 2:
        raise ShapeError(f"a linear operator matrix must be 2-D, got shape {tuple(M.shape)}")
    if d is not None and M.shape[1] != d:
        raise ShapeError(f"operator has {M.shape[1]} columns but the prior has dimension {d}")
    return M


def exact_posterior(prior: GaussianMixturePrior, A: Any, y: Tensor,
                    sigma_y: float) -> GaussianMixturePrior:
    r"""Exact posterior of a Gaussian-mixture prior under ``y = A x + sigma_y n``.

    For each component, the Gaussian conditioning formulas give (with ``G_k = A S_k A^T +
    sigma_y^2 I`` and the gain ``K_k = S_k A^T G_k^{-1}``)

    * mean ``mu_k + K_k (y - A mu_k)``, covariance ``S_k - K_k A S_k``,
    * weight ``w_k N(y; A mu_k, G_k)`` (normalised by log-sum-exp).

    Parameters
    ----------
    prior : GaussianMixturePrior or GaussianPrior
        The prior.
    A : Tensor or operator
        ``(d_y, d)`` matrix, an operator with a matrix attribute (``pnpdiff.operators.Matrix``),
        or any linear callable on samples of ``prior.shape``.
    y : Tensor
        One measurement, ``(d_y,)`` or with a leading batch dimension of size 1 (any shape with
        ``d_y`` elements).
    sigma_y : float
        Standard deviation of the Gaussian measurement noise (``>= 0``; 0 needs ``A S_k A^T``
        invertible).

    Returns
    -------
    GaussianMixturePrior
        The posterior, with ``weights``, ``means``, :meth:`~GaussianMixturePrior.covariances`,
        :meth:`~GaussianMixturePrior.mean` and :meth:`~GaussianMixturePrior.sample`; it acts on
        the prior's sample shape.

    References
    ----------
    C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer, 2006, Sec. 2.3.3.

    G. Cardoso, Y. Janati El Idrissi, S. Le Corff and E. Moulines, "Monte Carlo guided
    Diffusion for Bayesian linear inverse problems", ICLR 2024. https://arxiv.org/abs/2308.07983
    (the mixture case, Appendix)
    """
    dev = prior.means.device
    M = operator_matrix(A, prior.shape, prior.dim).to(dev)
    yv = _as_f64(y).to(dev).flatten()
    if yv.numel() != M.shape[0]:
        raise ShapeError(f"y has {yv.numel()} elements but the operator has {M.shape[0]} rows")
    if sigma_y < 0:
        raise ValueRangeError("sigma_y must be non-negative")
    S = prior.covariances()  # (K, d, d)
    AS = M[None] @ S  # (K, dy, d)
    G = AS @ M.T[None] + (sigma_y**2) * torch.eye(M.shape[0], dtype=_F64, device=dev)
    G = 0.5 * (G + G.transpose(-1, -2))
    L, info = torch.linalg.cholesky_ex(G)
    if (info != 0).any():
        raise ValueRangeError(
            "A S A^T + sigma_y^2 I is singular; use sigma_y > 0 or a full-row-rank operator"
        )
    r = yv[None] - prior.means @ M.T  # (K, dy)
    sol_r = torch.cholesky_solve(r[..., None], L)[..., 0]  # G^{-1} r
    sol_AS = torch.cholesky_solve(AS, L)  # G^{-1} A S
    means = prior.means + (AS.transpose(-1, -2) @ sol_r[..., None])[..., 0]
    covs = S - AS.transpose(-1, -2) @ sol_AS
    covs = 0.5 * (covs + covs.transpose(-1, -2))
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    loglik = -0.5 * ((r * sol_r).sum(-1) + logdet + M.shape[0] * math.log(2 * math.pi))
    logw = torch.log(prior.weights) + loglik
    w = torch.softmax(logw, dim=0)
    post = GaussianMixturePrior(w, means.reshape(-1, *prior.shape), covs, name=f"{prior.name}|y")
    return post


# ---------------------------------------------------------------------- MCGdiff set-up
def mcgdiff_mixture(d: int, generator: torch.Generator | None = None,
                    spacing: float = 8.0) -> GaussianMixturePrior:
    """The 25-component mixture of Cardoso et al. (MCGdiff, ICLR 2024), Sec. 4.1.

    Means ``(8 i, 8 j, 8 i, 8 j, ...)`` in ``R^d`` for ``(i, j)`` in ``{-2, ..., 2}^2``, unit
    covariances, and random weights ``w ~ N(0, 1)^2`` normalised (as in the authors' code).

    Parameters
    ----------
    d : int
        Dimension (odd ``d`` truncates the repeated ``(8 i, 8 j)`` pattern).
    generator : torch.Generator, optional
        Source of the random weights.
    spacing : float
        Grid spacing (8 in the paper).

    Returns
    -------
    GaussianMixturePrior
        The mixture (``data_range = None``), named ``"mcgdiff-gmm"``.

    Raises
    ------
    ValueRangeError
        If ``d < 1``.

    References
    ----------
    G. Cardoso, Y. Janati El Idrissi, S. Le Corff and E. Moulines, "Monte Carlo guided
    Diffusion for Bayesian linear inverse problems", ICLR 2024. https://arxiv.org/abs/2308.07983
    """
    if d < 1:
        raise ValueRangeError("d must be positive")
    g = torch.arange(-2, 3, dtype=_F64)
    ii, jj = torch.meshgrid(g, g, indexing="ij")
    pairs = torch.stack([ii.flatten(), jj.flatten()], dim=1) * spacing  # (25, 2)
    means = pairs.repeat(1, (d + 1) // 2)[:, :d]
    w = torch.randn(25, generator=generator, dtype=_F64) ** 2
    return GaussianMixturePrior(w, means, 1.0, name="mcgdiff-gmm")


def random_svd_operator(d_y: int, d: int,
                        generator: torch.Generator | None = None) -> tuple[Tensor, float]:
    """Random measurement matrix and noise level as in MCGdiff (Cardoso et al., ICLR 2024).

    A Gaussian ``(d_y, d)`` matrix gives singular vectors ``U``, ``V``; its singular values are
    replaced by sorted ``Uniform(0, 1)`` draws, ``A = U diag(s) V[:d_y]``, and the noise standard
    deviation is ``sigma_y = u * max(s)`` with ``u ~ Uniform(0, 1)``.

    Parameters
    ----------
    d_y, d : int
        Measurement and signal dimensions, ``1 <= d_y <= d``.
    generator : torch.Generator, optional
        Source of randomness.

    Returns
    -------
    A : Tensor
        The ``(d_y, d)`` float64 matrix.
    sigma_y : float
        The noise standard deviation.

    Raises
    ------
    ValueRangeError
        Unless ``1 <= d_y <= d``.

    References
    ----------
    G. Cardoso, Y. Janati El Idrissi, S. Le Corff and E. Moulines, "Monte Carlo guided
    Diffusion for Bayesian linear inverse problems", ICLR 2024. https://arxiv.org/abs/2308.07983
    """
    if not 1 <= d_y <= d:
        raise ValueRangeError(f"need 1 <= d_y <= d, got d_y={d_y}, d={d}")
    G = torch.randn(d_y, d, generator=generator, dtype=_F64)
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    s = torch.sort(torch.rand(d_y, generator=generator, dtype=_F64), descending=True).values
    A = U @ (s[:, None] * Vh)
    sigma_y = float(torch.rand(1, generator=generator, dtype=_F64)[0] * s.max())
    return A, sigma_y
