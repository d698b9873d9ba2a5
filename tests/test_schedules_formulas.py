"""Every schedule of ``pnpdiff.schedules`` checked at every entry against its formula, written
here independently (plain ``math``, no torch schedule code): a wrong ``rho``, a shifted spacing,
a missing endpoint or an off-by-one in the number of entries fails.

Tolerance: relative 1e-12 (both sides are float64 evaluations of the same closed form; the
DDPM table is a cumulative product of 1000 factors, relative rounding ~1e-13).
"""

from __future__ import annotations

import math

import pytest
import torch

from pnpdiff import schedules as S

REL = 1e-12


def _check(sig: torch.Tensor, expected: list[float]) -> None:
    assert sig.dtype == torch.float64
    got = sig.tolist()
    assert len(got) == len(expected) + 1 and got[-1] == 0.0, (len(got), len(expected))
    for i, (a, b) in enumerate(zip(got[:-1], expected)):
        assert a == pytest.approx(b, rel=REL, abs=0), (i, a, b)


def _frac(n: int) -> list[float]:
    return [i / (n - 1) for i in range(n)] if n > 1 else [0.0]


# ------------------------------------------------------------------ Karras et al. (2022), Eq. (5)
def karras_ref(n: int, smin: float, smax: float, rho: float) -> list[float]:
    return [(smax ** (1 / rho) + u * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho for u in _frac(n)]


@pytest.mark.parametrize("n", [1, 2, 10, 37])
@pytest.mark.parametrize("rho", [7.0, 3.0, 1.0])
def test_karras(n, rho) -> None:
    _check(S.karras(n, sigma_min=0.002, sigma_max=80.0, rho=rho), karras_ref(n, 0.002, 80.0, rho))


def test_karras_default_rho_is_7_and_a_wrong_rho_differs() -> None:
    sig = S.karras(10, 0.001, 40.0)
    _check(sig, karras_ref(10, 0.001, 40.0, 7.0))
    wrong = karras_ref(10, 0.001, 40.0, 6.0)
    assert abs(sig[5].item() / wrong[5] - 1) > 0.05  # the test above would catch rho = 6


def test_karras_defaults_are_edm_halved() -> None:
    _check(S.karras(5), karras_ref(5, 0.001, 40.0, 7.0))  # EDM 0.002..80 on [-1, 1], halved


# ------------------------------------------------------------------ geometric (DPIR)
def geometric_ref(n: int, smin: float, smax: float) -> list[float]:
    return [math.exp(math.log(smax) + u * (math.log(smin) - math.log(smax))) for u in _frac(n)]


@pytest.mark.parametrize("n", [1, 2, 8, 30])
def test_geometric(n) -> None:
    _check(S.geometric(n, 0.01, 49 / 255), geometric_ref(n, 0.01, 49 / 255))
    _check(S.geometric(n), geometric_ref(n, 0.01, 75 / 255))


# ------------------------------------------------------------------ DDPM linear betas (Ho et al. 2020)
def ddpm_table_ref(T: int = 1000, b0: float = 1e-4, b1: float = 0.02) -> list[float]:
    """sigma_t = sqrt((1 - abar_t) / abar_t) / 2 (VP on [-1, 1] -> VE on [0, 1], ALGORITHMS.md)."""
    out, abar = [], 1.0
    for t in range(T):
        abar *= 1 - (b0 + (b1 - b0) * t / (T - 1))
        out.append(math.sqrt((1 - abar) / abar) / 2)
    return out


TABLE = ddpm_table_ref()


def sigma_at(t: float) -> float:
    """Sigma at a continuous timestep: log-sigma linear between the integer timesteps."""
    lo = min(int(math.floor(t)), 999)
    hi = min(lo + 1, 999)
    w = t - lo
    return math.exp(math.log(TABLE[lo]) * (1 - w) + math.log(TABLE[hi]) * w)


def t_of(sigma: float) -> float:
    """Inverse of ``sigma_at`` by bisection (independent of the product's search)."""
    a, b = 0.0, 999.0
    for _ in range(200):
        m = 0.5 * (a + b)
        a, b = (m, b) if sigma_at(m) < sigma else (a, m)
    return 0.5 * (a + b)


def ddpm_ref(n: int, spacing: str, t_max: float = 999.0, t_min: float = 0.0) -> list[float]:
    f = _frac(n) if spacing == "uniform" else [math.sqrt(u) for u in _frac(n)]
    return [sigma_at(t_max - (t_max - t_min) * u) for u in f]


def test_ddpm_table() -> None:
    got = S.ddpm_sigma_table().tolist()
    assert len(got) == 1000
    for a, b in zip(got, TABLE):
        assert a == pytest.approx(b, rel=1e-12)


def test_ddpm_uniform_integer_timesteps() -> None:
    # 38 steps: t_i = 999 - 27 i, integers, so each entry is a table value exactly
    sig = S.ddpm(38, spacing="uniform")
    _check(sig, [TABLE[999 - 27 * i] for i in range(38)])


@pytest.mark.parametrize("n", [1, 7, 20, 100])
@pytest.mark.parametrize("spacing", ["uniform", "quadratic"])
def test_ddpm_spacings(n, spacing) -> None:
    _check(S.ddpm(n, spacing=spacing), ddpm_ref(n, spacing))


@pytest.mark.parametrize("spacing", ["uniform", "quadratic"])
def test_ddpm_restricted_range(spacing) -> None:
    lo, hi = 0.01, 75 / 255
    sig = S.ddpm(12, spacing=spacing, sigma_min=lo, sigma_max=hi)
    assert sig[0].item() == pytest.approx(hi, rel=1e-9) and sig[-2].item() == pytest.approx(lo, rel=1e-9)
    ref = ddpm_ref(12, spacing, t_of(hi), t_of(lo))
    for i, (a, b) in enumerate(zip(sig.tolist()[:-1], ref)):
        assert a == pytest.approx(b, rel=1e-9), i  # bisection to 1e-12 in t


# ------------------------------------------------------------------ cosine (Nichol & Dhariwal 2021)
def cosine_abar(u: float, s: float = 0.008) -> float:
    f = math.cos((u + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    return min(max(f, 1e-12), 1.0)


def cosine_ref(n: int, u_hi: float = 999 / 1000, u_lo: float = 1 / 1000) -> list[float]:
    out = []
    for k in range(n):
        u = u_hi + (u_lo - u_hi) * (k / (n - 1) if n > 1 else 0.0)
        a = cosine_abar(u)
        out.append(math.sqrt((1 - a) / a) / 2)
    return out


@pytest.mark.parametrize("n", [1, 5, 50])
def test_cosine(n) -> None:
    _check(S.cosine(n), cosine_ref(n))


def test_cosine_restricted_range() -> None:
    lo, hi = 0.01, 75 / 255

    def u_of(sig: float) -> float:  # bisection on the monotone abar(u)
        a, b = 0.0, 1.0
        for _ in range(200):
            m = 0.5 * (a + b)
            a, b = (m, b) if math.sqrt((1 - cosine_abar(m)) / cosine_abar(m)) / 2 < sig else (a, m)
        return 0.5 * (a + b)

    sig = S.cosine(9, sigma_min=lo, sigma_max=hi)
    ref = cosine_ref(9, u_of(hi), u_of(lo))
    for i, (a, b) in enumerate(zip(sig.tolist()[:-1], ref)):
        assert a == pytest.approx(b, rel=1e-9), i
    assert len(sig) == 10 and sig[-1] == 0


# ------------------------------------------------------------------ the registry
def test_get_schedule_delegates_with_documented_defaults() -> None:
    assert set(S.SCHEDULES) == {"ddpm", "cosine", "karras", "geometric"}
    _check(S.get_schedule("karras", 9), karras_ref(9, 0.001, 40.0, 7.0))
    _check(S.get_schedule("karras", 9, sigma_max=75 / 255, rho=5.0), karras_ref(9, 0.001, 75 / 255, 5.0))
    _check(S.get_schedule("geometric", 9), geometric_ref(9, 0.01, 75 / 255))
    _check(S.get_schedule("ddpm", 9, spacing="uniform"), ddpm_ref(9, "uniform"))
    _check(S.get_schedule("cosine", 9), cosine_ref(9))
