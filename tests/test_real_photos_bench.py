"""The real-photo benchmark's script (tests/benchmarks/real_photos.py, issue 28): its rows, its split
(the generalisation benchmark's), the Gaussian-likelihood rerun of a solve, the report's acceptance
lines and one tiny run of each section at 32 px."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

PATH = Path(__file__).resolve().parent / "benchmarks" / "real_photos.py"


def _load():
    spec = importlib.util.spec_from_file_location("real_photos_bench", PATH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("real_photos_bench", mod)
    spec.loader.exec_module(mod)
    return mod


rp = _load()
gen = rp.gen


def test_rows_per_section_and_half() -> None:
    for split, photos in (("tune", gen.TUNE_PHOTOS), ("test", gen.TEST_PHOTOS)):
        big = [p for p in photos if gen.PHOTOS[p][2] >= 256]
        assert len(rp.section_rows("blind", split)) == 3 * len(photos)
        assert len(rp.section_rows("poisson", split)) == 2 * 4 * len(photos)
        assert len(rp.section_rows("noisefit", split)) == 3 * len(big)
        assert len(rp.select_rows(split)) == (3 + 8) * len(photos) + 3 * len(big)


def test_split_is_the_generalisation_split_and_disjoint() -> None:
    tune, test = rp.select_rows("tune"), rp.select_rows("test")
    assert rp.select_rows("test") == test  # deterministic
    assert {r.photo for r in tune} <= set(gen.TUNE_PHOTOS) and {r.photo for r in test} <= set(gen.TEST_PHOTOS)
    assert not {r.photo for r in tune} & {r.photo for r in test}
    assert all(r.seed % 2 == 0 and r.split == "tune" for r in tune)
    assert all(r.seed % 2 == 1 and r.split == "test" for r in test)
    ids = [r.id for r in tune + test]
    assert len(set(ids)) == len(ids)
    assert all(r.id == f"{r.kind}/s{r.seed:02d}/{r.photo}" for r in tune + test)


def test_blind_rows_cover_the_issue_ranges() -> None:
    for split in ("tune", "test"):
        rows = rp.section_rows("blind", split)
        for fam in rp.BLIND_FAMILIES:
            fr = [r for r in rows if r.kind == fam]
            assert {r.sigma_y for r in fr} == {0.01, 0.025}  # every family sees both noise levels
            assert all(r.params["boundary"] == "circular" for r in fr)
        psf = [r.params["psf"] for r in rows if r.kind == "motion"]
        assert all(25 <= s <= 41 and s % 2 for s in psf) and max(psf) - min(psf) >= 10
        sig = [r.params["sigma"] for r in rows if r.kind == "gaussian"]
        assert all(0.8 <= s <= 4.0 for s in sig) and min(sig) < 1.2 and max(sig) > 3.5  # stratified
        rad = [r.params["radius"] for r in rows if r.kind == "defocus"]
        assert all(2.0 <= r <= 6.0 for r in rad) and min(rad) < 2.5 and max(rad) > 5.5
    # pinned: an id names the same degradation in every version that keeps it
    row = {r.id: r for r in rp.section_rows("blind", "test")}["gaussian/s07/cell"]
    assert (row.size, row.sigma_y, row.params) == (128, 0.01, {"sigma": 1.626, "boundary": "circular"})


def test_poisson_and_noisefit_rows() -> None:
    rows = rp.section_rows("poisson", "test")
    assert {(r.params["task"], r.params["peak"]) for r in rows} == {
        (t, float(p)) for t in ("denoise", "deblur") for p in (5, 10, 30, 100)}
    assert all(r.params.get("sigma") == 1.6 for r in rows if r.params["task"] == "deblur")
    nf = rp.section_rows("noisefit", "test")
    assert {(r.params["gain"], r.params["read_noise"]) for r in nf} == set(rp.NOISEFIT_PAIRS.values())
    assert all(r.size == 256 and gen.PHOTOS[r.photo][2] >= 256 for r in nf)  # no upscaled photo
    assert rp.methods_for(rows[-1]) == ["default", "gaussian-matched"]  # a deblur row
    assert rp.methods_for(rows[0]) == list(rp.POISSON_METHODS)  # a denoising row


def test_support_is_the_kernel_side_plus_margin_capped() -> None:
    assert rp.support_for(13, 128) == 17
    assert rp.support_for(12, 128) == 17  # odd
    assert rp.support_for(41, 128) == 45
    assert rp.support_for(61, 128) == 45  # capped
    assert rp.support_for(13, 32) == 15  # small smoke images: at most the largest odd side <= 16


def test_true_kernels() -> None:
    rows = {r.kind: r for r in rp.section_rows("blind", "test")}
    for kind, row in rows.items():
        k = rp.true_operator(row).kernel[0]
        assert torch.isclose(k.sum(), torch.tensor(1.0, dtype=k.dtype), atol=1e-6), kind
        assert (k >= 0).all()
    side = rp.true_operator(rows["motion"]).kernel.shape[-1]
    assert side == rows["motion"].params["psf"]


def test_gaussian_likelihood_twin_reproduces_a_gaussian_solve() -> None:
    """Rerunning what a solve reported (method, steps, options, schedule) through the solver
    function must give solve's own result on a Gaussian measurement: the schedule is rebuilt as
    ``pnpdiff.solve`` builds it (a wrong end of the schedule or range changes the result)."""
    import pnpdiff
    from pnpdiff.operators import GaussianBlur

    torch.manual_seed(0)
    x = torch.rand(1, 1, 32, 32)
    op = GaussianBlur(1.6)
    y = op(x) + 0.003 * torch.randn(x.shape)
    prior = pnpdiff.load_prior("natural")
    for sigma_y in (0.003, 0.05):  # diffpir on the ddpm schedule; dpir on a geometric one ending at sigma_y
        out, info = pnpdiff.solve(y, op, prior, sigma_y=sigma_y, seed=0, progress=False, return_info=True)
        twin = rp.gaussian_likelihood_twin(y, op, prior, info, sigma_y, torch.device("cpu"))
        assert info["steps"] > 1
        torch.testing.assert_close(twin.clamp(0, 1), out, rtol=0, atol=1e-6)


def _hand_results() -> dict:
    def row(rid, family, kind, sigma_y=0.01, params=None):
        return {"id": rid, "family": family, "kind": kind, "seed": 1, "photo": "moon", "size": 128,
                "sigma_y": sigma_y, "params": params or {}}

    def cell(p, **metrics):
        return {"psnr": p, "seconds": 1.0, "calls": 1, "note": "", "info": {}, "metrics": metrics}

    rows = {
        "a": {"row": row("a", "blind", "gaussian", 0.01, {"sigma": 2.0}), "cells": {
            "observed": cell(20.0), "true": cell(30.0), "blind": cell(29.5, kernel_error=0.2),
            "parametric": cell(29.9, kernel_error=0.1, param_error=0.05), "classical": cell(25.0, kernel_error=0.4),
            "best-gaussian": cell(29.0)}},
        "b": {"row": row("b", "blind", "motion", 0.025), "cells": {
            "observed": cell(22.0), "true": cell(28.0), "blind": cell(21.0, kernel_error=0.6),
            "classical": cell(24.0, kernel_error=0.8), "best-gaussian": cell(23.0)}},
        "c": {"row": row("c", "poisson", "denoise-peak5", 0.0, {"task": "denoise", "peak": 5.0}), "cells": {
            "default": cell(25.0), "gaussian-matched": cell(24.0), "anscombe-ffdnet": cell(25.0)}},
        "d": {"row": row("d", "noisefit", "pg-peak30", 0.02, {"gain": 1 / 30, "read_noise": 0.02}), "cells": {
            "estimate": cell(None, gain_error=0.05, read_noise_error=0.12)}},
    }
    return {"meta": {"split": "test", "command": "--x"}, "rows": rows}


def test_report_acceptance_lines_from_hand_values() -> None:
    text = rp.render_report(_hand_results(), per_row=True)
    # blind - true: (-0.5 - 7) / 2; row b is worse than observed; blind - classical (4.5 - 3) / 2;
    # blind - best-gaussian (0.5 - 2) / 2
    assert "FAIL: mean blind − true = -3.75 dB (>= −1.0)" in text
    assert "FAIL: rows where blind < observed: 1 of 2 (b)" in text
    assert "PASS: mean blind − classical = +0.75 dB (> 0)" in text
    assert "FAIL: mean blind − best-gaussian = -0.75 dB (> 0)" in text
    assert "gaussian: blind 0.200, parametric 0.100, classical 0.400" in text
    assert "motion: blind 0.600, parametric –, classical 0.800" in text
    assert "PASS: parametric Gaussian sigma relative error at sigma_y <= 0.025: max 5.0 %" in text
    assert "PASS: denoise peak 5: mean default − gaussian-matched = +1.00 dB (> 0)" in text
    assert "FAIL: denoise peak 5: mean default − anscombe-ffdnet = +0.000 dB (> 0)" in text  # a tie is no win
    assert "PASS: every estimated gain and read noise within 15 % (worst 12.0 % over 1 rows)" in text
    all_line = next(line for line in text.splitlines() if line.startswith("| **all** | 2 |"))
    assert all_line.split("|")[3].strip() == "21.00"  # mean observed


def test_smoke_main_one_row_per_section_at_32px(tmp_path: Path) -> None:
    """main() end to end on one tiny row of each section: JSON and report written, every method's
    cell present, --resume skips what is there, --from-json re-renders the same report."""
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    rows = ["gaussian/s07/cell", "denoise-peak10/s05/coins", "pg-peak30/s05/coins"]
    base = ["--rows", *rows[:2], "--size", "32", "--json", str(js), "--out", str(md), "--threads", "1"]
    assert rp.main(base) == 0
    # the noise fit needs 2x2 blocks at 16 levels of the mean: 64 px, merged into the same file
    assert rp.main(["--rows", rows[2], "--size", "64", "--json", str(js), "--resume", "--threads", "1"]) == 0
    data = json.loads(js.read_text())
    assert set(data["rows"]) == set(rows)
    assert data["meta"]["split"] == "test" and data["meta"]["size_override"] == 64  # the last run's
    assert "--size 32" in data["meta"]["command"] and "--size 64" in data["meta"]["command"]
    blind = data["rows"]["gaussian/s07/cell"]["cells"]
    assert set(blind) == set(rp.BLIND_METHODS)
    assert all(c["psnr"] is not None for c in blind.values())
    assert blind["observed"]["calls"] == 0
    for m in ("blind", "parametric", "classical"):
        assert 0 <= blind[m]["metrics"]["kernel_error"] < 2 and blind[m]["metrics"]["support"] == 15
    assert "param_error" in blind["parametric"]["metrics"]
    assert "kernel" not in blind["blind"]["info"]["kernel"]  # the taps are not stored
    assert blind["best-gaussian"]["calls"] > 10  # one solve per sigma of the grid
    pois = data["rows"]["denoise-peak10/s05/coins"]["cells"]
    assert set(pois) == set(rp.POISSON_METHODS)
    assert pois["anscombe-ffdnet"]["calls"] == 1
    assert pois["gaussian-matched"]["info"]["method"] == pois["default"]["info"]["method"]
    nf = data["rows"]["pg-peak30/s05/coins"]
    assert nf["row"]["size"] == 64  # the size it ran at
    assert nf["cells"]["estimate"]["metrics"]["gain_error"] >= 0
    assert rp.main(["--from-json", str(js), "--out", str(md)]) == 0
    report = md.read_text()
    for heading in ("### Blind deblurring", "### Poisson noise", "### Poisson-Gaussian parameters from y"):
        assert heading in report
    before = js.read_text()
    assert rp.main(["--rows", *rows, "--size", "32", "--json", str(js), "--resume", "--threads", "1"]) == 0
    assert json.loads(js.read_text())["rows"] == json.loads(before)["rows"]
    out2 = tmp_path / "again.md"
    assert rp.main(["--from-json", str(js), "--out", str(out2)]) == 0
    assert out2.read_text() == rp.render_report(json.loads(js.read_text()))


def test_selection_errors() -> None:
    with pytest.raises(SystemExit):
        rp.select_rows("test", ids=["gaussian/s06/camera"])  # a tuning row
    with pytest.raises(SystemExit):
        rp.section_rows("nope", "test")
