"""Schedules: decreasing float64 sigmas ending in 0, in [0, 1] units, restricted to a range."""

from __future__ import annotations

import math

import pytest
import torch

from pnpdiff import schedules as S


def test_ddpm_table_matches_vp_to_ve_conversion() -> None:
    # ALGORITHMS.md: linear betas 1e-4..0.02, T=1000 give sigma 0.005 at t=0 and 78.7 at t=999
    table = S.ddpm_sigma_table()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    assert torch.allclose(table, ((1 - abar) / abar).sqrt() / 2)
    assert table[0].item() == pytest.approx(0.005, rel=1e-3)
    assert table[-1].item() == pytest.approx(78.7, rel=1e-3)


@pytest.mark.parametrize("name", ["ddpm", "cosine", "karras", "geometric"])
@pytest.mark.parametrize("steps", [1, 7, 50])
def test_all_schedules_decrease_to_zero(name: str, steps: int) -> None:
    sig = S.get_schedule(name, steps, sigma_max=75 / 255)
    assert sig.dtype == torch.float64 and sig.shape == (steps + 1,)
    assert sig[-1] == 0 and bool((sig[:-1] > 0).all())
    assert bool((sig[1:] < sig[:-1]).all())
    assert sig[0].item() <= 75 / 255 + 1e-9


def test_ddpm_restriction_spends_all_steps_in_range() -> None:
    sig = S.ddpm(20, spacing="uniform", sigma_max=75 / 255)
    assert sig[0].item() == pytest.approx(75 / 255, rel=1e-6)
    assert sig[-2].item() == pytest.approx(0.005, rel=1e-3)
    assert len(sig) == 21


def test_ddpm_quadratic_spacing_matches_diffpir_timesteps() -> None:
    # DiffPIR's quadratic skip visits t_i = T-1 - T*sqrt(i/(n-1)): big jumps first, small last
    n = 10
    sig = S.ddpm(n, spacing="quadratic")
    table = S.ddpm_sigma_table()
    t = [999 * (1 - math.sqrt(i / (n - 1))) for i in range(n)]
    for i, ti in enumerate(t):
        lo, hi = math.floor(ti), min(math.floor(ti) + 1, 999)
        assert float(table[lo]) - 1e-12 <= sig[i].item() <= float(table[hi]) + 1e-12
    gaps = (sig[:-2] - sig[1:-1]).tolist()
    assert gaps[0] > gaps[-1]


def test_karras_endpoints() -> None:
    sig = S.karras(10, sigma_min=0.001, sigma_max=40.0, rho=7)
    assert sig[0].item() == pytest.approx(40.0) and sig[-2].item() == pytest.approx(0.001)


def test_unknown_schedule_lists_known() -> None:
    from pnpdiff import PnPError

    with pytest.raises(PnPError, match="karras"):
        S.get_schedule("nope", 5)
