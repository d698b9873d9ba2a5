"""DiffPIR, DDRM, DDNM, DDNM+, ΠGDM and DPIR in pnpdiff's units against the official loops in theirs.

Each ``_official_*`` function transcribes the loop of the authors' code in its own variables: VP
(DDPM) iterates on [-1, 1] images (``x' = 2 x - 1``, ``x_t' = sqrt(abar_t) x' + sqrt(1 - abar_t)
z``, ``y' = A x' + n' = 2 y - A 1``), integer timesteps of the linear beta table (1e-4 -> 0.02,
T = 1000), eps-prediction, the official timestep spacing and the official hyper-parameter
conventions. The "model" is the exact eps of an analytic Gaussian prior seen through the VP <-> VE
map of ``ALGORITHMS.md`` (``sigma_t = sqrt((1 - abar_t) / abar_t) / 2``), as in
``tests/test_official_loops.py``. pnpdiff's solver runs in VE form on [0, 1] units with the
converted hyper-parameters, on the same schedule and with the same noise draws (its module's
``randn_like`` is replaced by a feed of pre-drawn normals, which the reference consumes in the
official order), and must follow the official trajectory to 1e-9 in float64. Each test also shows
that a 5 % change of the converted hyper-parameter, or the unit slip the conversion is about,
breaks the match by orders of magnitude more than the tolerance.

Where pnpdiff deliberately differs from the official code the reference has a switch for exactly
that difference; the test shows the match with the switch set to pnpdiff's choice and a clear
mismatch without it (see each test's docstring).

Not transcribed: the drivers' initialisations (every solver here starts from ``x_init + sigma_0
n``; the reference is started from the same ``x_T``, mapped to VP), DPIR's x8 self-ensemble and
IRCNN model switching (denoiser-side tricks), and the official float32 arithmetic.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch

from pnpdiff.operators import GaussianBlur, Matrix
from pnpdiff.priors.gaussian import GaussianPrior
from pnpdiff.solvers.ddnm import ddnm, ddnm_plus, time_travel_path
from pnpdiff.solvers.ddrm import ddrm
from pnpdiff.solvers.diffpir import diffpir
from pnpdiff.solvers.dpir import dpir
from pnpdiff.solvers.pigdm import pigdm

# the modules themselves (``pnpdiff.solvers`` re-exports functions of the same names)
ddnm_mod, ddrm_mod, diffpir_mod, pigdm_mod = (
    importlib.import_module(f"pnpdiff.solvers.{m}") for m in ("ddnm", "ddrm", "diffpir", "pigdm")
)

F64 = torch.float64
TOL = 1e-9
N_TRAIN = 1000
BETAS = torch.linspace(1e-4, 0.02, N_TRAIN, dtype=F64)
ABAR = torch.cumprod(1 - BETAS, 0)


# ---------------------------------------------------------------------------------------- units
def abar(t: int) -> float:
    """alpha-bar of integer timestep ``t``; ``t = -1`` is 1 (the official ``compute_alpha`` pads)."""
    return 1.0 if t < 0 else float(ABAR[t])


def sig01(t: int) -> float:
    """The VE noise level of timestep ``t`` in [0, 1] units."""
    a = abar(t)
    return ((1 - a) / a) ** 0.5 / 2


def vp_eps(prior, x_vp, t: int):
    """The exact eps-prediction of ``prior`` at timestep ``t`` for a VP iterate on [-1, 1]."""
    a = abar(t)
    return prior.eps((x_vp / a**0.5 + 1) / 2, sig01(t))


def to_vp(x01, t: int):
    return abar(t) ** 0.5 * (2 * x01 - 1)


def from_vp(x_vp, t: int):
    return (x_vp / abar(t) ** 0.5 + 1) / 2


def feed(monkeypatch, module, draws):
    """Replace ``module.randn_like`` by a feed of ``draws`` (checked for shape); returns the list
    of draws still unused, to check that the solver used them all."""
    left = list(draws)

    def fake(x, generator=None):
        n = left.pop(0)
        assert n.shape == x.shape, (n.shape, x.shape)
        return n.to(x.dtype)

    monkeypatch.setattr(module, "randn_like", fake)
    return left


def normals(shape, k: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=F64) for _ in range(k)]


# ------------------------------------------------------------------------------------- problems
def vector_problem(m: int = 3, d: int = 8, sigma_y: float = 0.05, seed: int = 0):
    """A Gaussian prior of [0, 1]-valued data in R^8, a random 3 x 8 matrix, y = A x + n."""
    g = torch.Generator().manual_seed(seed)
    mu = 0.5 + 0.1 * torch.randn(d, generator=g, dtype=F64)
    B = torch.randn(d, d, generator=g, dtype=F64)
    prior = GaussianPrior(mu, 0.01 * (B @ B.T / d + 0.5 * torch.eye(d, dtype=F64)))
    A = torch.randn(m, d, generator=g, dtype=F64) / d**0.5
    x = prior.sample(1, generator=g)
    y = x @ A.T + sigma_y * torch.randn(1, m, generator=g, dtype=F64)
    return prior, A, y


def image_problem(sigma_y: float = 0.05, n: int = 8, seed: int = 0):
    """A smooth Gaussian prior of 8 x 8 grey images around 0.5, a circular Gaussian blur."""
    g = torch.Generator().manual_seed(seed)
    ii, jj = torch.meshgrid(torch.arange(n, dtype=F64), torch.arange(n, dtype=F64), indexing="ij")
    p = torch.stack([ii.flatten(), jj.flatten()], 1)
    S = 0.01 * torch.exp(-((p[:, None] - p[None]) ** 2).sum(-1) / 8) + 0.002 * torch.eye(n * n, dtype=F64)
    prior = GaussianPrior(0.5 + 0.05 * torch.randn(1, n, n, generator=g, dtype=F64), S)
    op = GaussianBlur(1.0, kernel_size=5)
    x = prior.sample(1, generator=g)
    y = op(x) + sigma_y * torch.randn(x.shape, generator=g, dtype=F64)
    return prior, op, y


def fft_blur(op, y01):
    """``sr.pre_calculate(y, k, sf=1)`` of the DPIR/DiffPIR code: ``p2o`` of the kernel and the
    FFT terms of the data step."""
    k = op.kernel[0].to(F64)
    h, w = k.shape
    otf = torch.zeros(y01.shape[-2:], dtype=F64)
    otf[:h, :w] = k
    otf = torch.roll(otf, (-(h // 2), -(w // 2)), dims=(0, 1))  # p2o
    FB = torch.fft.fftn(otf, dim=(-2, -1))
    FBC = torch.conj(FB)
    F2B = torch.abs(FB) ** 2
    FBFy = FBC * torch.fft.fftn(y01, dim=(-2, -1))
    return FB, FBC, F2B, FBFy


def data_solution(x, FB, FBC, F2B, FBFy, alpha):
    """``sr.data_solution(x, FB, FBC, F2B, FBFy, alpha, sf=1)``: argmin ||y - k*z||^2 + alpha ||z - x||^2."""
    FR = FBFy + torch.fft.fftn(alpha * x, dim=(-2, -1))
    invWBR = (FB * FR) / (F2B + alpha)  # sf = 1: the mean over one split is the thing itself
    FX = (FR - FBC * invWBR) / alpha
    return torch.real(torch.fft.ifftn(FX, dim=(-2, -1)))


# ----------------------------------------------------------------------------------------- DiffPIR
def _official_diffpir(fft, prior, ts, x, lambda_, zeta, sigma, noises, eta=0.0, eta_noises=None,
                      guidance_scale=1.0):
    """``main_ddpir_deblur.py`` (yuanzhi-zhu/DiffPIR), generate_mode 'DiffPIR', pred_xstart,
    sub_1_analytic, in VP units on [-1, 1]; ``ts`` are the integer timesteps ``t_i``. Returns the
    official output ``x`` (the iterate at the last timestep) and the last ``x0``."""
    max_abs_x0 = 0.0
    for i, t in enumerate(ts):
        ab = abar(t)
        x0 = (x - (1 - ab) ** 0.5 * vp_eps(prior, x, t)) / ab**0.5  # p_sample's pred_xstart
        max_abs_x0 = max(max_abs_x0, float(x0.abs().max()))
        x0 = x0.clamp(-1, 1)  # clip_denoised=True (inactive here: checked by the caller)
        if i == len(ts) - 1:
            break
        tau = lambda_ * sigma**2 / ((1 - ab) / ab)  # rhos[t_i] = lambda sigma^2 / sigma_ks^2
        x0_p = data_solution(x0 / 2 + 0.5, *fft, tau) * 2 - 1
        x0 = x0 + guidance_scale * (x0_p - x0)
        ab_n = abar(ts[i + 1])
        eps = (x - ab**0.5 * x0) / (1 - ab) ** 0.5
        eta_sigma = eta * (1 - ab_n) ** 0.5 / (1 - ab) ** 0.5 * float(BETAS[t]) ** 0.5
        en = torch.zeros_like(x) if eta_noises is None else eta_noises[i]
        x = (ab_n**0.5 * x0 + (1 - zeta) ** 0.5 * ((1 - ab_n - eta_sigma**2) ** 0.5 * eps + eta_sigma * en)
             + zeta**0.5 * (1 - ab_n) ** 0.5 * noises[i])
    return x, x0, max_abs_x0


def quad_timesteps(iter_num: int) -> list[int]:
    """DiffPIR's ``skip_type='quad'`` sequence, as timesteps ``t_i = T - 1 - seq[i]``."""
    seq = [int(s) for s in np.sqrt(np.linspace(0, N_TRAIN**2, iter_num))]
    seq[-1] = seq[-1] - 1
    return [N_TRAIN - 1 - s for s in seq]


def test_diffpir_follows_the_official_loop(monkeypatch) -> None:
    """``rho_t = lambda sigma_n^2 / sigmabar_t^2`` with ``sigmabar_t`` on [-1, 1] is pnpdiff's
    ``lam * sigma_y^2 / t^2`` with ``lam = lambda / 4`` (ALGORITHMS.md); ``zeta`` is unitless.

    Deliberate difference: at the last timestep the official code computes ``x0`` but outputs the
    iterate ``x`` (VE noise 0.005 left in it, and not divided by ``sqrt(abar_0)``); pnpdiff returns
    that ``x0``. Both are compared: pnpdiff's result with the official last ``x0``, and pnpdiff's
    iterate before its last step (callback) with the official output in VE units.
    """
    sigma_y, lambda_, zeta = 0.05, 7.0, 0.3
    prior, op, y = image_problem(sigma_y)
    fft = fft_blur(op, y)
    probe = torch.rand(y.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    torch.testing.assert_close(op(probe), torch.real(torch.fft.ifftn(fft[0] * torch.fft.fftn(probe))),
                               rtol=0, atol=1e-12)  # the operator is the official FFT convolution
    ts = quad_timesteps(10)
    assert ts[0] == 999 and ts[-1] == 0
    sigmas = torch.tensor([sig01(t) for t in ts], dtype=F64)
    draws = normals(y.shape, len(ts), seed=1)  # x_T, then one per step
    x_init = y.clone()
    ref_x, ref_x0, max_abs = _official_diffpir(fft, prior, ts, to_vp(x_init + sigmas[0] * draws[0], ts[0]),
                                               lambda_, zeta, max(0.001, sigma_y), draws[1:])
    assert max_abs < 1  # the official clip_denoised never acted

    def run(lam=lambda_ / 4, zeta=zeta):
        seen = {}
        left = feed(monkeypatch, diffpir_mod, draws)
        out = diffpir(y, op, prior, sigmas, sigma_y, lam=lam, zeta=zeta, x_init=x_init,
                      callback=lambda i, s, x, x0: seen.__setitem__(i, x.clone()))
        assert left == []
        return out, seen[len(ts) - 2]

    got, x_before_last = run()
    assert (got - x_init).abs().max() > 0.05  # it moved
    torch.testing.assert_close(got, (ref_x0 + 1) / 2, rtol=0, atol=TOL)
    torch.testing.assert_close(x_before_last, from_vp(ref_x, ts[-1]), rtol=0, atol=TOL)
    for bad in (dict(lam=lambda_), dict(lam=lambda_ / 4 * 1.05), dict(zeta=zeta * 1.05)):
        assert (run(**bad)[0] - (ref_x0 + 1) / 2).abs().max() > 1e3 * TOL, bad


# -------------------------------------------------------------------------------------------- DDRM
class _SVD:
    """The spectral view of a dense matrix, as the official ``H_funcs`` (and ``pnpdiff.Matrix``)
    compute it: one full ``torch.linalg.svd`` in float64."""

    def __init__(self, A):
        self.A = A
        self.U, self.s, self.Vh = torch.linalg.svd(A, full_matrices=True)
        self.m, self.d = A.shape

    def V(self, c):
        return c @ self.Vh

    def Vt(self, x):
        return x @ self.Vh.T

    def Ut(self, y):
        return y @ self.U

    def H(self, x):
        return x @ self.A.T

    def H_pinv(self, y):
        return (self.Ut(y) / self.s) @ self.Vh[: self.m]


def _official_ddrm(H, prior, seq, x, y0, sigma_0, etaB, etaA, etaC, step_noises, init="official"):
    """``efficient_generalized_steps`` (bahjat-kawar/ddrm, functions/denoising.py) in VP units;
    ``x`` is the unit noise the driver draws, ``y0`` and ``sigma_0`` are on [-1, 1].

    The official code draws three noise tensors per step for disjoint sets of coefficients (all,
    then the ``cond_after`` ones, then the ``cond_before`` ones); here each coefficient gets entry
    ``i`` of one draw per step, as pnpdiff does (a relabelling of independent normals).
    ``init='official'`` divides ``p(x_T | y)``'s draw by ``sigma_T``; ``'exact'`` multiplies it by
    ``sqrt(abar_T) = 1 / sqrt(1 + sigma_T^2)`` (the paper's Eq. 7 in VP form).
    """
    d, m = H.d, H.m
    singulars = H.s
    Sigma = torch.zeros(d, dtype=F64)
    Sigma[:m] = singulars
    U_t_y = H.Ut(y0)
    Sig_inv_U_t_y = U_t_y / singulars[: U_t_y.shape[-1]]
    ab_T = abar(seq[-1])
    largest_sigma = ((1 - ab_T) / ab_T) ** 0.5
    large = torch.where(singulars * largest_sigma > sigma_0)[0]
    inv_sz = torch.zeros(d, dtype=F64)
    inv_sz[large] = sigma_0 / singulars[large]
    init_y = torch.zeros(1, d, dtype=F64)
    init_y[:, large] = U_t_y[:, large] / singulars[large]
    init_y = init_y + (largest_sigma**2 - inv_sz**2).clamp_min(0).sqrt() * x
    init_y = init_y / largest_sigma if init == "official" else init_y * ab_T**0.5
    x = H.V(init_y)
    seq_next = [-1] + list(seq[:-1])
    falses = torch.zeros(d - m, dtype=torch.bool)
    for k, (i, j) in enumerate(zip(reversed(seq), reversed(seq_next))):
        at, at_next = abar(i), abar(j)
        et = vp_eps(prior, x, i)
        x0_t = (x - et * (1 - at) ** 0.5) / at**0.5
        sigma_next = ((1 - at_next) / at_next) ** 0.5
        V_t_x0 = H.Vt(x0_t)
        SVt_x0 = (V_t_x0 * Sigma)[:, :m]
        cond_before_lite = singulars * sigma_next > sigma_0
        cond_after_lite = singulars * sigma_next < sigma_0
        cond_before = torch.hstack((cond_before_lite, falses))
        cond_after = torch.hstack((cond_after_lite, falses))
        std_nextC = sigma_next * etaC
        sigma_tilde_nextC = (sigma_next**2 - std_nextC**2) ** 0.5
        std_nextA = sigma_next * etaA
        sigma_tilde_nextA = (sigma_next**2 - std_nextA**2) ** 0.5
        diff_sigma_t_nextB = (sigma_next**2 - sigma_0**2 / singulars[cond_before_lite] ** 2 * etaB**2).sqrt()
        n = step_noises[k]
        nxt = V_t_x0 + sigma_tilde_nextC * H.Vt(et) + std_nextC * n  # missing pixels
        resid = ((U_t_y - SVt_x0) / sigma_0)[:, cond_after_lite]
        nxt[:, cond_after] = (V_t_x0[:, cond_after] + sigma_tilde_nextA * resid
                              + std_nextA * n[:, cond_after])  # less noisy than y
        nxt[:, cond_before] = (Sig_inv_U_t_y[:, cond_before_lite] * etaB + (1 - etaB) * V_t_x0[:, cond_before]
                               + diff_sigma_t_nextB * n[:, :m][:, cond_before_lite])  # noisier than y
        x = at_next**0.5 * H.V(nxt)
    return x


def test_ddrm_follows_the_official_loop(monkeypatch) -> None:
    """The official runner doubles ``sigma_0`` for [-1, 1]; pnpdiff's ``sigma_y`` is the [0, 1]
    value itself; ``eta = 0.85``, ``eta_b = 1`` carry over. pnpdiff's unmeasured coefficients are
    centred on ``V^T x_init`` (the official code: on 0 in [-1, 1], i.e. ``x_init = 0.5``).

    The official start divides the draw of ``p(x_T | y)`` by ``sigma_T`` instead of multiplying
    it by ``sqrt(abar_T)`` (Eq. 7), a relative ``1 / (2 sigma_T'^2)`` = 1.5e-4 at t = 950 that the
    first denoising steps all but erase: both versions match pnpdiff to 1e-9 here.
    """
    sigma_y, eta, eta_b = 0.05, 0.85, 1.0
    prior, A, y = vector_problem(sigma_y=sigma_y)
    H = _SVD(A)
    seq = list(range(0, N_TRAIN, 50))  # sample_image: skip = num_timesteps // timesteps, 20 steps
    sigmas = torch.tensor([sig01(t) for t in reversed(seq)], dtype=F64)
    draws = normals((1, 8), len(seq) + 1, seed=2)
    y0, sigma_0 = 2 * y - torch.ones(1, 8, dtype=F64) @ A.T, 2 * sigma_y
    ref = (_official_ddrm(H, prior, seq, draws[0], y0, sigma_0, eta_b, eta, eta, draws[1:], init="exact") + 1) / 2
    ref_official = (_official_ddrm(H, prior, seq, draws[0], y0, sigma_0, eta_b, eta, eta, draws[1:]) + 1) / 2
    x_init = torch.full((1, 8), 0.5, dtype=F64)

    def run(sigma_y=sigma_y, eta=eta, eta_b=eta_b):
        left = feed(monkeypatch, ddrm_mod, draws)
        out = ddrm(y, Matrix(A), prior, sigmas, sigma_y, eta=eta, eta_b=eta_b, svd_threshold=0.0, x_init=x_init)
        assert left == []
        return out

    got = run()
    assert (got - x_init).abs().max() > 0.05
    noise_y = sigma_y / H.s
    assert bool((noise_y > sigmas[-1]).all()) and bool((noise_y < sigmas[-3]).all())  # both branches are used
    torch.testing.assert_close(got, ref_official, rtol=0, atol=TOL)
    torch.testing.assert_close(got, ref, rtol=0, atol=TOL)
    for bad in (dict(sigma_y=2 * sigma_y), dict(sigma_y=1.05 * sigma_y), dict(eta=1.05 * eta), dict(eta_b=0.95)):
        assert (run(**bad) - ref).abs().max() > 1e3 * TOL, bad


# -------------------------------------------------------------------------------------- DDNM, DDNM+
def _official_times(T_sampling: int, travel_length: int = 1, travel_repeat: int = 1) -> list[int]:
    """``get_schedule_jump`` (RePaint, as copied in the DDNM code)."""
    jumps = {j: travel_repeat - 1 for j in range(0, T_sampling - travel_length, travel_length)}
    t, ts = T_sampling, []
    while t >= 1:
        t -= 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(travel_length):
                t += 1
                ts.append(t)
    ts.append(-1)
    return ts


def test_time_travel_path_is_the_official_one():
    """The official path in indices ``T - 1 - t``, its runs of single up-steps merged into one jump
    (an off-by-one in the jump positions fails this)."""
    for T, L, R in [(10, 2, 2), (20, 3, 3), (7, 1, 2), (50, 5, 2)]:
        idx = [T - 1 - t for t in _official_times(T, L, R)]
        merged, going_back = [idx[0]], False
        for a, b in zip(idx, idx[1:]):
            if b < a and going_back:  # a further single up-step of the same jump
                merged[-1] = b
            else:
                merged.append(b)
            going_back = b < a
        assert time_travel_path(T, L, R) == merged, (T, L, R)
    assert time_travel_path(10, 2, 2)[:6] == [0, 1, 2, 3, 1, 2]


def _pairs(T_sampling: int, skip: int):
    times = _official_times(T_sampling)
    for i, j in zip(times[:-1], times[1:]):
        i, j = i * skip, j * skip
        yield i, (-1 if j < 0 else j)


def _official_ddnm(H, prior, T_sampling, skip, x, y, eta, noises):
    """``ddnm_diffusion`` (wyhuai/DDNM, functions/svd_ddnm.py) without time travel, VP units."""
    for k, (i, j) in enumerate(_pairs(T_sampling, skip)):
        at, at_next = abar(i), abar(j)
        et = vp_eps(prior, x, i)
        x0_t = (x - et * (1 - at) ** 0.5) / at**0.5
        x0_t_hat = x0_t - H.H_pinv(H.H(x0_t) - y)
        c1 = (1 - at_next) ** 0.5 * eta
        c2 = (1 - at_next) ** 0.5 * ((1 - eta**2) ** 0.5)
        x = at_next**0.5 * x0_t_hat + c1 * noises[k] + c2 * et
    return x


def _official_ddnm_plus(H, prior, T_sampling, skip, x, y, sigma_y, eta, noises, split="official"):
    """``ddnm_plus_diffusion`` (wyhuai/DDNM, functions/svd_ddnm.py) without time travel, VP units,
    with ``A_funcs.Lambda`` / ``Lambda_noise`` written for a general SVD in the form of the
    official ``Inpainting`` class (both the noise and ``et`` taken to the V basis). The noise
    ``noises[k]`` is given in the V basis (the official pixel-space draw is ``V`` of it).

    ``split='official'``: the code's Eq. 17-19 with DDIM's eta: on a coefficient noisier than the
    measurement ``lambda = sqrt(1 - eta^2) sigma_t s_i / (a sigma_y)`` and fresh noise ``eta
    sigma_t``; on a cleaner one fresh noise ``sqrt(sigma_t^2 - a^2 sigma_y^2 / s_i^2)`` only.
    ``split='paper'``: pnpdiff's choice, the paper's Eq. 19 (``lambda = sigma_t s_i / (a
    sigma_y)``, ``gamma = sigma_t^2 - (a lambda sigma_y / s_i)^2``) with the DDIM mix ``sqrt(gamma)
    (eta n + sqrt(1 - eta^2) et)`` on every coefficient.
    """
    d = H.d
    singulars = torch.zeros(d, dtype=F64)
    singulars[: H.m] = H.s
    inv_s = torch.where(singulars == 0, 0.0, 1 / singulars.clamp_min(1e-300))
    for k, (i, j) in enumerate(_pairs(T_sampling, skip)):
        at, at_next = abar(i), abar(j)
        et = vp_eps(prior, x, i)
        x0_t = (x - et * (1 - at) ** 0.5) / at**0.5
        sigma_t, a = (1 - at_next) ** 0.5, at_next**0.5
        noisy = (sigma_t < a * sigma_y * inv_s).to(F64)
        lam = torch.ones(d, dtype=F64)
        if a != 0 and sigma_y != 0:
            f = (1 - eta**2) ** 0.5 if split == "official" else 1.0
            lam = lam * (1 - noisy) + noisy * (singulars * sigma_t * f / a / sigma_y)
        x0_t_hat = x0_t - H.V(lam * H.Vt(H.H_pinv(H.H(x0_t) - y)))  # Eq. 17, Lambda
        if split == "official":
            d1 = torch.full((d,), sigma_t * eta, dtype=F64)
            d2 = torch.full((d,), sigma_t * (1 - eta**2) ** 0.5, dtype=F64)
            if a != 0 and sigma_y != 0:
                d1 = d1 * (1 - noisy) + noisy * sigma_t * eta
                d2 = d2 * (1 - noisy)
                clean = (sigma_t > a * sigma_y * inv_s).to(F64)
                d1 = d1 * (1 - clean) + torch.sqrt(clean * (sigma_t**2 - a**2 * sigma_y**2 * inv_s**2))
                d2 = d2 * (1 - clean)
                null = (singulars == 0).to(F64)
                d1 = d1 * (1 - null) + null * sigma_t * eta
                d2 = d2 * (1 - null) + null * sigma_t * (1 - eta**2) ** 0.5
        else:
            gamma = (sigma_t**2 - (a * lam * sigma_y * inv_s) ** 2).clamp_min(0)
            gamma = torch.where(singulars == 0, sigma_t**2, gamma)
            d1, d2 = gamma.sqrt() * eta, gamma.sqrt() * (1 - eta**2) ** 0.5
        x = a * x0_t_hat + H.V(d1 * noises[k]) + H.V(d2 * H.Vt(et))  # Eq. 51, Lambda_noise
    return x


def _ddnm_setup(sigma_y):
    prior, A, y = vector_problem(sigma_y=sigma_y)
    T_sampling, skip = 10, N_TRAIN // 10
    ts = [i for i, _ in _pairs(T_sampling, skip)]
    sigmas = torch.tensor([sig01(t) for t in ts], dtype=F64)
    x_init = torch.full((1, 8), 0.5, dtype=F64)
    draws = normals((1, 8), T_sampling + 1, seed=3)
    x_T = to_vp(x_init + sigmas[0] * draws[0], ts[0])
    y_vp = 2 * y - torch.ones(1, 8, dtype=F64) @ A.T
    return prior, A, y, y_vp, T_sampling, skip, sigmas, x_init, draws, x_T


def test_ddnm_follows_the_official_loop(monkeypatch) -> None:
    """Noise-free DDNM: ``x0 - A^+ (A x0 - y)`` is unit-free, ``eta = 0.85`` unitless; the official
    DDIM transition ``sqrt(abar') x0 + sqrt(1 - abar') (eta n + sqrt(1 - eta^2) et)`` is
    ``x0 + s (eta n + sqrt(1 - eta^2) eps)`` in VE units."""
    eta = 0.85
    prior, A, y, y_vp, T_s, skip, sigmas, x_init, draws, x_T = _ddnm_setup(sigma_y=0.0)
    H = _SVD(A)
    ref = (_official_ddnm(H, prior, T_s, skip, x_T, y_vp, eta, draws[1:]) + 1) / 2

    def run(eta=eta):
        left = feed(monkeypatch, ddnm_mod, draws)
        out = ddnm(y, Matrix(A), prior, sigmas, 0.0, eta=eta, x_init=x_init)
        assert left == []
        return out

    got = run()
    assert (got - x_init).abs().max() > 0.05
    torch.testing.assert_close(got, ref, rtol=0, atol=TOL)
    assert (run(eta=1.05 * eta) - ref).abs().max() > 1e3 * TOL


def _run_ddnm_plus(monkeypatch, y, A, prior, sigmas, sigma_y, eta, x_init, draws):
    left = feed(monkeypatch, ddnm_mod, draws)
    out = ddnm_plus(y, Matrix(A), prior, sigmas, sigma_y, eta=eta, svd_threshold=0.0, x_init=x_init)
    assert left == []
    return out


def test_ddnm_plus_follows_the_official_loop_where_the_splits_agree(monkeypatch) -> None:
    """With ``eta = 1`` and every measured coefficient cleaner than the iterate at every nonzero
    step, the official code and pnpdiff's Eq. 19 coincide; ``sigma_y`` (doubled by the official
    runner for [-1, 1]) is then the [0, 1] value in pnpdiff, and its last step leaves ``x0``
    uncorrected."""
    sigma_y, eta = 0.001, 1.0
    prior, A, y, y_vp, T_s, skip, sigmas, x_init, draws, x_T = _ddnm_setup(sigma_y)
    H = _SVD(A)
    assert bool((sigma_y / H.s < sigmas[-1]).all())
    ref = (_official_ddnm_plus(H, prior, T_s, skip, x_T, y_vp, 2 * sigma_y, eta, draws[1:]) + 1) / 2
    got = _run_ddnm_plus(monkeypatch, y, A, prior, sigmas, sigma_y, eta, x_init, draws)
    assert (got - x_init).abs().max() > 0.05
    torch.testing.assert_close(got, ref, rtol=0, atol=TOL)
    for bad in (2 * sigma_y, 1.05 * sigma_y):
        assert (_run_ddnm_plus(monkeypatch, y, A, prior, sigmas, bad, eta, x_init, draws) - ref).abs().max() > 1e3 * TOL


def test_ddnm_plus_differs_from_the_official_loop_only_by_its_noise_split(monkeypatch) -> None:
    """Deliberate difference (documented in ``ddnm_plus``): pnpdiff uses the paper's Eq. 19
    (``lambda_i = s s_i / sigma_y``, ``gamma_i = s^2 - (lambda_i sigma_y / s_i)^2``) and mixes
    ``eta`` inside ``sqrt(gamma)``; the official SVD code scales ``lambda`` by ``sqrt(1 - eta^2)``
    on noisy coefficients and injects only fresh noise on the measured ones. With the reference
    switched to that split (``split='paper'``) the match is exact; with the official split it is
    not (both noisy and clean coefficients occur here)."""
    sigma_y, eta = 0.05, 0.85
    prior, A, y, y_vp, T_s, skip, sigmas, x_init, draws, x_T = _ddnm_setup(sigma_y)
    H = _SVD(A)
    noise_y = sigma_y / H.s
    assert bool((noise_y > sigmas[-1]).all()) and bool((noise_y < sigmas[-3]).all())
    ref = (_official_ddnm_plus(H, prior, T_s, skip, x_T, y_vp, 2 * sigma_y, eta, draws[1:], split="paper") + 1) / 2
    official = (_official_ddnm_plus(H, prior, T_s, skip, x_T, y_vp, 2 * sigma_y, eta, draws[1:]) + 1) / 2
    got = _run_ddnm_plus(monkeypatch, y, A, prior, sigmas, sigma_y, eta, x_init, draws)
    torch.testing.assert_close(got, ref, rtol=0, atol=TOL)
    assert (got - official).abs().max() > 1e-3
    for s_y, e in ((2 * sigma_y, eta), (1.05 * sigma_y, eta), (sigma_y, 1.05 * eta)):
        assert (_run_ddnm_plus(monkeypatch, y, A, prior, sigmas, s_y, e, x_init, draws) - ref).abs().max() > 1e3 * TOL


# ------------------------------------------------------------------------------------------- ΠGDM
def _official_pgdm(H, prior, ts, x, y0, eta, weights, noises, sigma_y=None):
    """``PGDM.sample`` (NVlabs/RED-diff, algos/pgdm.py; awd = cond_awd = mcg = False) in VP units;
    ``x`` is the initialised ``x_T``, ``y0`` on [-1, 1], ``weights[k]`` the ``grad_term_weight``
    of step ``k``. RED-diff's code is noise-free: ``mat = H^+ y - H^+ H x0``. With ``sigma_y``
    (on [-1, 1]) given, ``mat`` is the paper's noisy residual ``r_t^2 H^T (r_t^2 H H^T + sigma_y^2
    I)^{-1} (y - H x0)``, ``r_t^2 = 1 - abar_t``, which is the former at ``sigma_y = 0``."""
    ss = [-1] + list(ts[:-1])
    for k, (ti, si) in enumerate(zip(reversed(ts), reversed(ss))):
        a_t, a_s = abar(ti), abar(si)
        c1 = ((1 - a_t / a_s) * (1 - a_s) / (1 - a_t)) ** 0.5 * eta
        c2 = ((1 - a_s) - c1**2) ** 0.5
        xt = x.detach().requires_grad_(True)
        et = vp_eps(prior, xt, ti)
        x0_pred = (xt - (1 - a_t) ** 0.5 * et) / a_t**0.5
        if sigma_y is None:
            mat = H.H_pinv(y0) - H.H_pinv(H.H(x0_pred))
        else:
            r2 = 1 - a_t
            G = r2 * H.A @ H.A.T + sigma_y**2 * torch.eye(H.m, dtype=F64)
            mat = r2 * torch.linalg.solve(G, (y0 - H.H(x0_pred)).T).T @ H.A
        (grad_term,) = torch.autograd.grad((mat.detach() * x0_pred).sum(), xt)
        coeff = (a_s**0.5 - c2 * a_t**0.5 / (1 - a_t) ** 0.5) * a_t**0.5 * weights[k]
        x0_pred = x0_pred.detach()
        et = (xt.detach() - x0_pred * a_t**0.5) / (1 - a_t) ** 0.5
        x = a_s**0.5 * x0_pred + c1 * noises[k] + c2 * et + grad_term * coeff
    return x.detach()


def _pgdm_setup(sigma_y):
    prior, A, y = vector_problem(sigma_y=sigma_y)
    H = _SVD(A)
    ts = list(range(0, N_TRAIN, 50))
    sigmas = torch.tensor([sig01(t) for t in reversed(ts)], dtype=F64)
    y_vp = 2 * y - torch.ones(1, 8, dtype=F64) @ A.T
    draws = normals((1, 8), len(ts) + 1, seed=4)
    x_0 = H.H_pinv(y_vp)  # initialize(): sqrt(abar_T) H^+ y + sqrt(1 - abar_T) n
    x_T = abar(ts[-1]) ** 0.5 * x_0 + (1 - abar(ts[-1])) ** 0.5 * draws[0]
    x_init = (x_0 + 1) / 2  # the same start in [0, 1] VE units: x_init + sigma_T n
    torch.testing.assert_close(to_vp(x_init + sigmas[0] * draws[0], ts[-1]), x_T, rtol=0, atol=1e-12)
    # Tweedie weight of the paper's score: sqrt(abar) w = 1 / sqrt(abar)  <=>  w = 1 / abar
    tweedie = [1 / abar(t) for t in reversed(ts)]
    return prior, A, H, y, y_vp, ts, sigmas, draws, x_T, x_init, tweedie


def _run_pigdm(monkeypatch, y, A, prior, sigmas, sigma_y, x_init, draws, **kw):
    left = feed(monkeypatch, pigdm_mod, draws)
    out = pigdm(y, Matrix(A), prior, sigmas, sigma_y, x_init=x_init, **kw)
    assert left == []
    return out


def test_pigdm_follows_the_official_loop_noiseless(monkeypatch) -> None:
    """RED-diff's ΠGDM step ``x_s += (sqrt(abar_s) - c2 sqrt(abar_t / (1 - abar_t))) sqrt(abar_t) w
    J^T H^+ (y - H x0)`` is the DDIM step from the guided ``x0 + sqrt(abar_t) w J_vp^T (...)``.

    Deliberate difference: pnpdiff weights the guidance by Tweedie (``x0 += t^2 * score``, the
    paper's derivation, ``guidance = 1``), which is RED-diff's loop with ``w_t = 1 / abar_t``;
    RED-diff's constant ``w = 1`` is pnpdiff's ``guidance = abar_t``, far weaker at high noise.
    """
    eta = 1.0
    prior, A, H, y, y_vp, ts, sigmas, draws, x_T, x_init, tweedie = _pgdm_setup(0.0)
    ref = (_official_pgdm(H, prior, ts, x_T, y_vp, eta, tweedie, draws[1:]) + 1) / 2
    const_w = (_official_pgdm(H, prior, ts, x_T, y_vp, eta, [1.0] * len(ts), draws[1:]) + 1) / 2
    got = _run_pigdm(monkeypatch, y, A, prior, sigmas, 0.0, x_init, draws, eta=eta)
    assert (got - x_init).abs().max() > 0.05
    torch.testing.assert_close(got, ref, rtol=0, atol=TOL)
    assert (got - const_w).abs().max() > 1e-3
    for kw in (dict(guidance=1.05), dict(data_std=1.0), dict(eta=0.95)):
        bad = _run_pigdm(monkeypatch, y, A, prior, sigmas, 0.0, x_init, draws, **kw)
        assert (bad - ref).abs().max() > 1e3 * TOL, kw


def test_pigdm_follows_the_official_loop_noisy(monkeypatch) -> None:
    """The paper's noisy guidance ``(r_t^2 H H^T + sigma_y^2 I)^{-1}`` with ``r_t^2 = 1 - abar_t``
    on [-1, 1] is pnpdiff's ``r_t^2 = t^2 / (1 + 4 t^2)`` (``data_std = 0.5``) with ``sigma_y``
    halved; inserted into RED-diff's loop with the Tweedie weight (see the noiseless test)."""
    sigma_y, eta = 0.05, 1.0
    prior, A, H, y, y_vp, ts, sigmas, draws, x_T, x_init, tweedie = _pgdm_setup(sigma_y)
    ref = (_official_pgdm(H, prior, ts, x_T, y_vp, eta, tweedie, draws[1:], sigma_y=2 * sigma_y) + 1) / 2
    got = _run_pigdm(monkeypatch, y, A, prior, sigmas, sigma_y, x_init, draws, eta=eta)
    assert (got - x_init).abs().max() > 0.05
    torch.testing.assert_close(got, ref, rtol=0, atol=TOL)
    mutations = ((2 * sigma_y, {}), (1.05 * sigma_y, {}), (sigma_y, dict(data_std=1.0)), (sigma_y, dict(guidance=1.05)))
    for s_y, kw in mutations:
        bad = _run_pigdm(monkeypatch, y, A, prior, sigmas, s_y, x_init, draws, eta=eta, **kw)
        assert (bad - ref).abs().max() > 1e3 * TOL, (s_y, kw)


# -------------------------------------------------------------------------------------------- DPIR
def _official_dpir(fft, prior, y01, sigmas, rhos):
    """``main_dpir_deblur.py`` (cszn/DPIR) main iterations, x8 off, on [0, 1] images."""
    x = y01.clone()  # x = img_L
    for sigma_k, tau in zip(sigmas, rhos):
        x = data_solution(x, *fft, tau)
        x = prior.denoise(x, sigma_k)
    return x


def dpir_rho_sigma(sigma: float, iter_num: int, modelSigma1: float, modelSigma2: float):
    """``utils_pnp.get_rho_sigma(w=1)``: float32 log-spaced levels (kept), rhos in float64 here."""
    sigmas = (np.logspace(np.log10(modelSigma1), np.log10(modelSigma2), iter_num).astype(np.float32) / 255.0)
    sigmas = [float(s) for s in sigmas]
    return [0.23 * sigma**2 / s**2 for s in sigmas], sigmas


@pytest.mark.parametrize("sigma_y", [7.65 / 255, 0.0])
def test_dpir_follows_the_official_loop(sigma_y: float) -> None:
    """DPIR works on [0, 1] like pnpdiff: ``lam = 0.23`` unchanged, ``sigma_y`` floored at
    ``0.255 / 255``; started, as the official code, from ``y`` itself (pnpdiff's default start is
    :func:`initial_estimate`)."""
    prior, op, y = image_problem(sigma_y)
    fft = fft_blur(op, y)
    rhos, sigmas = dpir_rho_sigma(max(0.255 / 255, sigma_y), 8, 49.0, max(sigma_y * 255, 2.55))
    ref = _official_dpir(fft, prior, y, sigmas, rhos)
    sched = torch.tensor(sigmas, dtype=F64)
    got = dpir(y, op, prior, sched, sigma_y, lam=0.23, x_init=y)
    assert (got - y).abs().max() > 0.02
    torch.testing.assert_close(got, ref, rtol=0, atol=TOL)
    slip = 2 * max(sigma_y, 0.255 / 255)  # sigma_y on [-1, 1]
    for lam, s_y in ((0.23 * 1.05, sigma_y), (0.23, slip), (0.23 / 4, sigma_y)):
        assert (dpir(y, op, prior, sched, s_y, lam=lam, x_init=y) - ref).abs().max() > 1e3 * TOL


def test_unit_helpers() -> None:
    """The VP <-> VE map used above: sigma from 0.005 (t = 0) to 78.7 (t = 999) in [0, 1] units."""
    assert math.isclose(sig01(0), 0.005, rel_tol=1e-3) and math.isclose(sig01(999), 78.7, rel_tol=1e-3)
    x = torch.linspace(0, 1, 8, dtype=F64).reshape(1, 8)
    torch.testing.assert_close(from_vp(to_vp(x, 500), 500), x, rtol=0, atol=1e-14)
