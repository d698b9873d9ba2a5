"""Exact output moments of the linear solvers and samplers under a Gaussian prior (test reference).

Under a Gaussian prior ``N(mu, S)`` the exact MMSE denoiser is affine,
``D(x, t) = W_t x + (I - W_t) mu`` with ``W_t = S (S + t^2 I)^{-1}``, and every update of DDRM,
DDNM, DDNM+, DiffPIR, ΠGDM and of the unconditional samplers (DDPM, DDIM, Euler, Heun) is affine
in the iterate plus fresh Gaussian noise: ``x_s = F x_t + b + G n``. A Gaussian start therefore
stays Gaussian, and the law of the *output* of ``steps`` updates is ``N(m, P)`` with ``m`` and
``P`` obtained by propagating ``m <- F m + b``, ``P <- F P F^T + G G^T`` step by step.

The maps below are written from the papers' update equations (as restated in the solvers'
docstrings and in ``ALGORITHMS.md``), independently of the product code. They give, for a given
schedule, the covariance each method *should* produce, so that a test can separate a method's
known bias (its expected covariance against the exact posterior) from Monte-Carlo error (its
sample covariance against its expected covariance) and from an implementation slip (a sample
covariance that matches neither).

Everything is float64 and dense (``d`` is small in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

F64 = torch.float64

Step = Callable[[Tensor, Tensor, float, float], tuple[Tensor, Tensor]]


class GaussianMoments:
    """Affine-Gaussian moment propagation for a prior ``N(mu, S)`` in ``R^d``."""

    def __init__(self, mu: Tensor, S: Tensor) -> None:
        self.mu = mu.to(F64).flatten()
        self.S = S.to(F64)
        self.d = self.mu.numel()
        self.eye = torch.eye(self.d, dtype=F64)

    # ---------------------------------------------------------------- pieces
    def W(self, t: float) -> Tensor:
        """Gain of the exact denoiser, ``S (S + t^2 I)^{-1}``."""
        return torch.linalg.solve(self.S + t * t * self.eye, self.S).T  # symmetric

    def denoiser(self, t: float) -> tuple[Tensor, Tensor]:
        """``D(x, t) = W x + c``: returns ``(W, c)``."""
        W = self.W(t)
        return W, (self.eye - W) @ self.mu

    @staticmethod
    def push(m: Tensor, P: Tensor, F: Tensor, b: Tensor, G: Tensor | None = None) -> tuple[Tensor, Tensor]:
        m2 = F @ m + b
        P2 = F @ P @ F.T
        if G is not None:
            P2 = P2 + G @ G.T
        return m2, 0.5 * (P2 + P2.T)

    def run(self, m: Tensor, P: Tensor, sigmas: Sequence[float], step: Step) -> tuple[Tensor, Tensor]:
        for i in range(len(sigmas) - 1):
            m, P = step(m, P, float(sigmas[i]), float(sigmas[i + 1]))
        return m, P

    # ---------------------------------------------------------------- unconditional samplers
    def ddim_step(self, eta: float) -> Step:
        """DDIM (Song et al. 2021, Eq. 12) in VE form: ``c = eta s sqrt(1 - s^2/t^2)``,
        ``x_s = x0 + sqrt(s^2 - c^2) (x_t - x0) / t + c n`` (``eta = 1``: the DDPM bridge)."""

        def step(m, P, t, s):
            W, c0 = self.denoiser(t)
            c = eta * s * math.sqrt(max(1 - s * s / (t * t), 0.0))
            k = math.sqrt(max(s * s - c * c, 0.0)) / t
            F = W + k * (self.eye - W)
            b = (1 - k) * c0
            return self.push(m, P, F, b, c * self.eye)

        return step

    def ddpm_step(self) -> Step:
        """DDPM ancestral step = the VE Brownian bridge ``x0 + (s^2/t^2)(x_t - x0) + s sqrt(1 - s^2/t^2) n``."""

        def step(m, P, t, s):
            W, c0 = self.denoiser(t)
            r = (s / t) ** 2
            F = W + r * (self.eye - W)
            return self.push(m, P, F, (1 - r) * c0, s * math.sqrt(1 - r) * self.eye)

        return step

    def heun_step(self) -> Step:
        """Karras et al. (2022) Algorithm 1 (Heun, no churn) on ``dx/dsigma = (x - D(x, sigma))/sigma``."""

        def step(m, P, t, s):
            W, c0 = self.denoiser(t)
            Fd, bd = (self.eye - W) / t, -c0 / t  # d(x) = Fd x + bd
            Fe, be = self.eye + (s - t) * Fd, (s - t) * bd  # Euler predictor x' = Fe x + be
            if s == 0:
                return self.push(m, P, Fe, be)
            W2, c2 = self.denoiser(s)
            Fd2, bd2 = ((self.eye - W2) / s) @ Fe, ((self.eye - W2) @ be - c2) / s  # d(x') in x
            F = self.eye + 0.5 * (s - t) * (Fd + Fd2)
            b = 0.5 * (s - t) * (bd + bd2)
            return self.push(m, P, F, b)

        return step

    # ---------------------------------------------------------------- solvers (y = A x + sigma_y n)
    def diffpir_step(self, A: Tensor, y: Tensor, sigma_y: float, lam: float, zeta: float) -> Step:
        """DiffPIR (Zhu et al. 2023) Algorithm 1: prox data step with ``rho = lam sigma_y^2 / t^2``,
        re-noising with the corrected estimate; no data step on the last step."""
        sy = max(sigma_y, 1e-3)

        def step(m, P, t, s):
            W, c0 = self.denoiser(t)
            if s == 0:
                return self.push(m, P, W, c0)
            rho = lam * sy * sy / (t * t)
            Pinv = torch.linalg.inv(A.T @ A + rho * self.eye)
            Fz, bz = rho * Pinv @ W, Pinv @ (A.T @ y + rho * c0)  # z = prox(D(x)) = Fz x + bz
            k = math.sqrt(1 - zeta) * s / t
            return self.push(m, P, Fz + k * (self.eye - Fz), (1 - k) * bz, s * math.sqrt(zeta) * self.eye)

        return step

    def ddnm_step(self, A: Tensor, y: Tensor, eta: float) -> Step:
        """DDNM (Wang et al. 2023) with the authors' DDIM transition: ``x0 <- x0 - A^+ (A x0 - y)``,
        ``x_s = x0 + s (sqrt(1 - eta^2) eps + eta n)`` with ``eps = (x_t - D(x_t)) / t``."""
        Ap = torch.linalg.pinv(A)
        Pn = self.eye - Ap @ A

        def step(m, P, t, s):
            W, c0 = self.denoiser(t)
            k = math.sqrt(1 - eta * eta) * s / t
            F = Pn @ W + k * (self.eye - W)
            b = Pn @ c0 + Ap @ y - k * c0
            return self.push(m, P, F, b, eta * s * self.eye)

        return step

    def _svd(self, A: Tensor, y: Tensor, sigma_y: float, svd_threshold: float):
        U, sv, Vh = torch.linalg.svd(A, full_matrices=True)
        V = Vh.T
        s_full = torch.zeros(self.d, dtype=F64)
        s_full[: sv.numel()] = sv
        measured = s_full >= svd_threshold * s_full.max()
        measured &= s_full > 0
        s_safe = torch.where(measured, s_full, torch.ones_like(s_full))
        uty = torch.zeros(self.d, dtype=F64)
        uty[: sv.numel()] = (U.T @ y)[: sv.numel()]
        ybar = torch.where(measured, uty / s_safe, torch.zeros_like(s_full))
        noise = torch.where(measured, sigma_y / s_safe, torch.full_like(s_full, math.inf))
        return V, measured, ybar, noise

    def ddrm_start(self, A: Tensor, y: Tensor, sigma_y: float, T: float, x_init: Tensor,
                   svd_threshold: float = 3e-2) -> tuple[Tensor, Tensor]:
        """DDRM Eq. (7): ``xbar_T,i ~ N(ybar_i, T^2 - noise_i^2)`` where measured and ``noise_i <= T``,
        else ``N((V^T x_init)_i, T^2)``."""
        V, measured, ybar, noise = self._svd(A, y, sigma_y, svd_threshold)
        use_y = measured & (noise <= T)
        mb = torch.where(use_y, ybar, V.T @ x_init.to(F64).flatten())
        vb = torch.where(use_y, T * T - noise.clamp(max=T) ** 2, torch.full_like(mb, T * T))
        return V @ mb, V @ torch.diag(vb) @ V.T

    def ddrm_step(self, A: Tensor, y: Tensor, sigma_y: float, eta: float, eta_b: float,
                  svd_threshold: float = 3e-2) -> Step:
        """DDRM (Kawar et al. 2022) Eq. (8), per spectral coefficient (unmeasured / noisier than the
        target level / cleaner than it)."""
        V, measured, ybar, noise = self._svd(A, y, sigma_y, svd_threshold)
        k = math.sqrt(1 - eta * eta)

        def step(m, P, t, s):
            W, c0 = self.denoiser(t)
            Wb, cb = V.T @ W @ V, V.T @ c0  # xbar0 = Wb xbar + cb
            noisy = measured & (noise > s)
            clean = measured & ~noisy
            a = torch.where(~measured, torch.full_like(ybar, k * s / t), torch.zeros_like(ybar))
            ratio = torch.where(noisy, k * s / noise.clamp(max=1e300), torch.zeros_like(ybar))
            bcoef = torch.where(noisy, 1 - ratio, torch.full_like(ybar, 1 - eta_b))
            bcoef = torch.where(~measured, 1 - k * s / t, bcoef)
            const = torch.where(noisy, ratio * ybar, torch.where(clean, eta_b * ybar, torch.zeros_like(ybar)))
            e = torch.where(clean, (s * s - eta_b**2 * noise.clamp(max=s) ** 2).clamp_min(0).sqrt(),
                            torch.full_like(ybar, eta * s))
            Fb = torch.diag(a) + torch.diag(bcoef) @ Wb
            bb = bcoef * cb + const
            return self.push(m, P, V @ Fb @ V.T, V @ bb, V @ torch.diag(e))

        return step

    def ddnm_plus_step(self, A: Tensor, y: Tensor, sigma_y: float, eta: float,
                       svd_threshold: float = 3e-2) -> Step:
        """DDNM+ (Wang et al. 2023) Eq. (17)-(19) with the DDIM transition, in the spectral view:
        ``lambda_i = min(1, s / noise_i)``, ``gamma_i = s^2 - (lambda_i noise_i)^2`` (``s^2`` on the
        null space), ``x_s = V[(1 - lambda) xbar0 + lambda ybar] + V sqrt(gamma) (sqrt(1-eta^2) ebar + eta n)``."""
        V, measured, ybar, noise = self._svd(A, y, sigma_y, svd_threshold)
        noise0 = torch.where(measured, noise, torch.zeros_like(noise))
        k = math.sqrt(1 - eta * eta)

        def step(m, P, t, s):
            W, c0 = self.denoiser(t)
            Wb, cb = V.T @ W @ V, V.T @ c0
            lam = torch.where(noise0 <= s, torch.ones_like(noise0), s / noise0.clamp_min(1e-300))
            lam = torch.where(measured, lam, torch.zeros_like(lam))  # no correction on the null space
            gamma = torch.where(measured, (s * s - (lam * noise0) ** 2).clamp_min(0), torch.full_like(lam, s * s))
            g = gamma.sqrt()
            # xbar0' = (1 - lam) (Wb xbar + cb) + lam ybar ;  ebar = (I - Wb) xbar / t - cb / t
            Fb = torch.diag(1 - lam) @ Wb + torch.diag(g * k / t) @ (torch.eye(self.d, dtype=F64) - Wb)
            bb = (1 - lam) * cb + lam * ybar - g * k * cb / t
            return self.push(m, P, V @ Fb @ V.T, V @ bb, V @ torch.diag(g * eta))

        return step

    def pigdm_output(self, A: Tensor, y: Tensor, sigma_y: float, sigmas: Sequence[float], m: Tensor, P: Tensor,
                     eta: float = 1.0, data_std: float = 1.0, guidance: float = 1.0) -> tuple[Tensor, Tensor]:
        """ΠGDM (Song et al. 2023) Algorithm 1: guided ``x0 = D + t^2 W^T A^T (r^2 A A^T + sigma_y^2 I)^{-1}
        (y - A D)``, ``r^2 = c^2 t^2 / (c^2 + t^2)``, DDIM(eta) step with the guided ``x0``; the output
        is the last guided ``x0``."""
        dy = A.shape[0]
        out = (m, P)
        for i in range(len(sigmas) - 1):
            t, s = float(sigmas[i]), float(sigmas[i + 1])
            W, c0 = self.denoiser(t)
            r2 = data_std**2 * t * t / (data_std**2 + t * t)
            K = A.T @ torch.linalg.inv(r2 * A @ A.T + sigma_y**2 * torch.eye(dy, dtype=F64))
            # x0' = W x + c0 + guidance t^2 W K (y - A (W x + c0))
            G0 = guidance * t * t * W @ K
            Fx0 = W - G0 @ A @ W
            bx0 = c0 + G0 @ (y - A @ c0)
            out = self.push(m, P, Fx0, bx0)
            c1 = eta * s * math.sqrt(max(1 - s * s / (t * t), 0.0))
            k = math.sqrt(max(s * s - c1 * c1, 0.0)) / t
            m, P = self.push(m, P, Fx0 + k * (self.eye - Fx0), (1 - k) * bx0, c1 * self.eye)
        return out


# -------------------------------------------------------------------- Monte-Carlo floors
def cov_floor(C: Tensor, n: int) -> tuple[float, float]:
    """Root-mean-square Monte-Carlo errors of the sample covariance of ``n`` Gaussian draws.

    For ``n`` i.i.d. ``N(m, C)`` samples the unbiased sample covariance ``C_hat`` satisfies
    ``E ||C_hat - C||_F^2 = (tr(C)^2 + ||C||_F^2) / (n - 1)`` and ``Var tr(C_hat) = 2 ||C||_F^2 / (n - 1)``
    (Wishart moments). Returns the RMS relative Frobenius error ``sqrt(E||.||^2) / ||C||_F`` and the
    standard deviation of the trace ratio ``tr(C_hat) / tr(C)``.
    """
    fro2 = float((C * C).sum())
    tr = float(torch.trace(C))
    return math.sqrt((tr * tr + fro2) / (n - 1)) / math.sqrt(fro2), math.sqrt(2 * fro2 / (n - 1)) / tr


def rel_fro(A: Tensor, B: Tensor) -> float:
    """``||A - B||_F / ||B||_F``."""
    return float((A - B).norm() / B.norm())


def trace_ratio(A: Tensor, B: Tensor) -> float:
    return float(torch.trace(A) / torch.trace(B))
