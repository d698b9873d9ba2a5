"""The generalisation benchmark's script (tests/benchmarks/generalisation.py): its rows, its fixed
tuning / test split and its report's aggregates (no solve of realistic size)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

PATH = Path(__file__).resolve().parent / "benchmarks" / "generalisation.py"


def _load():
    spec = importlib.util.spec_from_file_location("generalisation_bench", PATH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("generalisation_bench", mod)
    spec.loader.exec_module(mod)
    return mod


gen = _load()


def _halves():
    return gen.select_rows("tune"), gen.select_rows("test")


def test_photo_lists_are_disjoint_and_mix_colour_grey_and_kinds() -> None:
    assert not set(gen.TUNE_PHOTOS) & set(gen.TEST_PHOTOS)
    assert set(gen.TUNE_PHOTOS) | set(gen.TEST_PHOTOS) == set(gen.PHOTOS)
    for half in (gen.TUNE_PHOTOS, gen.TEST_PHOTOS):
        colours = {gen.PHOTOS[p][0] for p in half}
        assert colours == {True, False}
        kinds = {gen.PHOTOS[p][1] for p in half}
        assert {"texture", "scene", "document"} <= kinds
        assert kinds & {"microscopy", "medical"}
    # every photo docs/quality.md measured a default on is a tuning photo (the test half is unseen)
    assert {"astronaut", "coffee", "chelsea", "rocket", "camera"} <= set(gen.TUNE_PHOTOS)


def test_split_of_is_by_photo_and_seed_parity() -> None:
    assert gen.split_of("astronaut", 0) == "tune"
    assert gen.split_of("moon", 1) == "test"
    assert gen.split_of("astronaut", 1) is None  # mixed rows are dropped
    assert gen.split_of("moon", 2) is None
    assert gen.split_of("not-a-photo", 1) is None


def test_split_is_deterministic_and_disjoint() -> None:
    tune, test = _halves()
    assert gen.select_rows("tune") == tune and gen.select_rows("test") == test  # same rows twice
    assert [r.id for r in gen.all_rows()] == [r.id for r in gen.all_rows()]
    assert not {r.photo for r in tune} & {r.photo for r in test}
    assert {r.photo for r in tune} <= set(gen.TUNE_PHOTOS)
    assert {r.photo for r in test} <= set(gen.TEST_PHOTOS)
    # a seed belongs to one half only, for every kind
    assert all(r.seed % 2 == 0 for r in tune) and all(r.seed % 2 == 1 for r in test)
    assert all(r.split == "tune" for r in tune) and all(r.split == "test" for r in test)
    # every row of the grid is in one half
    assert len(tune) + len(test) == len(gen.all_rows())


def test_row_ids_unique_and_stable() -> None:
    rows = gen.all_rows()
    ids = [r.id for r in rows]
    assert len(set(ids)) == len(ids)
    for r in rows:
        assert r.id == f"{r.kind}/s{r.seed:02d}/{r.photo}"
    # pinned: an id names the same degradation in every version of the grid that keeps it
    by_id = {r.id: r for r in rows}
    row = by_id["gaussian/s01/moon"]
    assert (row.size, row.sigma_y, row.params) == (128, 0.05, {"sigma": 3.513, "boundary": "circular"})
    assert by_id["sr/s11/immunohistochemistry"].size == 126  # the largest multiple of 3 below 128


def test_every_family_and_axis_appears_in_both_halves() -> None:
    for rows in _halves():
        assert 40 <= len(rows) <= 70
        assert {r.family for r in rows} == set(gen.FAMILIES)
        assert {r.kind for r in rows} == set(gen.KINDS)
        assert {r.sigma_y for r in rows} == set(gen.SIGMAS_Y)
        assert {r.size for r in rows} >= {128, 256, 512}
        blur = [r for r in rows if r.family == "blur"]
        assert {r.params["boundary"] for r in blur} == {"circular", "reflect"}
        sr = {(r.params["factor"], r.params["filter"]) for r in rows if r.kind == "sr"}
        assert sr == {(f, k) for f in (2, 3, 4, 8) for k in ("bicubic", "gaussian")}
        p = [r.params["p_missing"] for r in rows if r.kind == "inpaint-random"]
        assert min(p) < 0.35 and max(p) > 0.75  # stratified over 20..90 %
        sig = [r.params["sigma"] for r in rows if r.kind == "gaussian"]
        assert min(sig) < 1.5 and max(sig) > 3.0
        psf = [r.params["psf"] for r in rows if r.kind == "dinv-motion"]
        assert all(15 <= s <= 41 and s % 2 for s in psf)
        # colour and grey photos both used, and no photo upscaled
        assert {gen.PHOTOS[r.photo][0] for r in rows} == {True, False}
        assert all(gen.PHOTOS[r.photo][2] >= r.size for r in rows)


def test_photo_table_matches_scikit_image() -> None:
    """The shorter sides the split relies on (no upscaled photo) are the photos' real ones."""
    from pnpdiff.io import load_source_image

    for name, (colour, _, side) in gen.PHOTOS.items():
        x = load_source_image(f"skimage:{name}", None)[0]
        assert min(x.shape[-2:]) == side, name
        assert (x.shape[1] == 3) == colour, name


def test_selection_flags() -> None:
    test = gen.select_rows("test")
    sr = gen.select_rows("test", families=["sr"])
    assert sr and all(r.kind == "sr" for r in sr)
    both = gen.select_rows("test", families=["blur", "inpaint-box"])
    assert {r.family for r in both} == {"blur", "inpaint"} and all(
        r.kind == "inpaint-box" for r in both if r.family == "inpaint")
    assert all(r.size <= 128 for r in gen.select_rows("test", max_size=128))
    assert gen.select_rows("test", limit=3) == test[:3]
    assert [r.id for r in gen.select_rows("test", ids=[test[5].id])] == [test[5].id]
    with pytest.raises(SystemExit):
        gen.select_rows("test", families=["nope"])
    with pytest.raises(SystemExit):
        gen.select_rows("test", ids=[gen.select_rows("tune")[0].id])  # a tuning row is not in the test half


def test_disk_kernel() -> None:
    k = gen.disk_kernel(2.0)
    assert k.shape == (5, 5)
    assert torch.isclose(k.sum(), torch.tensor(1.0, dtype=k.dtype))
    assert int((k > 0).sum()) == 13  # the lattice points with i^2 + j^2 <= 4
    assert k[0, 0] == 0 and k[2, 0] > 0


def test_call_counter_counts_every_denoiser_call() -> None:
    class P:
        def denoise(self, x, sigma):
            return x

    p = P()
    c = gen.CallCounter(p)
    for _ in range(3):
        p.denoise(torch.zeros(1), 0.1)
    assert c.calls == 3
    c.reset()
    assert c.calls == 0


def _hand_results() -> dict:
    """Two blur rows and one sr row with made-up numbers."""
    def row(rid: str, family: str, kind: str, seed: int) -> dict:
        return {"id": rid, "family": family, "kind": kind, "seed": seed, "photo": "rocket", "size": 128,
                "sigma_y": 0.01, "params": {}}

    def cell(p, calls=10, note=""):
        return {"psnr": p, "seconds": 1.0, "calls": calls, "note": note, "info": {}}

    rows = {
        "a": {"row": row("a", "blur", "gaussian", 1), "cells": {
            "default": cell(30.0, 20), "calibrate": cell(30.5, 60), "deepinv-dpir": cell(29.0),
            "oracle": cell(31.0, note="dpir lam=0.1 steps=8")}},
        "b": {"row": row("b", "blur", "motion", 3), "cells": {
            "default": cell(25.0, 16), "calibrate": cell(None, None, "n/a: no calibrate"),
            "deepinv-dpir": cell(26.0), "oracle": cell(25.5)}},
        "c": {"row": row("c", "sr", "sr", 5), "cells": {
            "default": cell(28.0, 24), "calibrate": cell(27.0, 72), "deepinv-dpir": cell(27.5),
            "oracle": cell(28.0)}},
    }
    return {"meta": {"split": "test", "command": "--x"}, "rows": rows}


def test_aggregates_equal_hand_computed_values() -> None:
    res = _hand_results()
    cells = {rid: {m: gen.Cell(**c) for m, c in e["cells"].items()} for rid, e in res["rows"].items()}
    methods = ["default", "calibrate", "deepinv-dpir", "oracle"]
    blur = gen.aggregate([cells["a"], cells["b"]], methods)
    assert blur["rows"] == 2
    assert blur["psnr"]["default"] == pytest.approx(27.5)
    assert blur["psnr"]["calibrate"] == pytest.approx(30.5) and blur["n"]["calibrate"] == 1
    assert blur["default_minus_dpir"] == pytest.approx((0.0, -1.0))  # (+1 - 1) / 2, min -1
    assert blur["oracle_minus_default"] == pytest.approx(0.75)  # (1 + 0.5) / 2
    assert blur["oracle_minus_calibrate"] == pytest.approx(0.5)  # only row a has calibrate
    assert blur["calls"]["default"] == pytest.approx(18.0)
    assert blur["calls"]["calibrate"] == pytest.approx(60.0)  # the n/a row has no calls
    every = gen.aggregate(list(cells.values()), methods)
    assert every["default_minus_dpir"][0] == pytest.approx((1.0 - 1.0 + 0.5) / 3)
    assert every["default_minus_dpir"][1] == pytest.approx(-1.0)
    assert every["oracle_minus_default"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert every["oracle_minus_calibrate"] == pytest.approx((0.5 + 1.0) / 2)


def test_report_shows_the_aggregates() -> None:
    text = gen.render_report(_hand_results(), per_row=True)
    lines = text.splitlines()
    blur = next(line for line in lines if line.startswith("| blur |"))
    cols = [c.strip() for c in blur.strip("|").split("|")]
    # group, rows, default, calibrate, deepinv-dpir, oracle, d-dpir mean, min, o-d, o-c, calls d, calls c
    assert cols == ["blur", "2", "27.50", "30.50 (1)", "27.50", "28.25", "+0.00", "-1.00", "+0.75", "+0.50",
                    "18.0", "60.0"]
    assert any(line.startswith("| **all** | 3 |") for line in lines)
    assert text.startswith("## Generalisation benchmark, test half")
    assert "`b` calibrate: n/a: no calibrate" in text
    assert "| a |" in text and "dpir lam=0.1 steps=8" in text  # per-row table with the oracle's pick


def test_smoke_main_two_rows_at_32px(tmp_path: Path) -> None:
    """main() end to end on two tiny rows with the cheap methods: JSON and report written, merged by
    --methods, skipped by --resume, re-rendered by --from-json."""
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    rows = ["gaussian/s07/page", "denoise/s01/page"]
    base = ["--rows", *rows, "--size", "32", "--json", str(js), "--out", str(md), "--threads", "1"]
    assert gen.main([*base, "--methods", "classical"]) == 0
    data = json.loads(js.read_text())
    assert set(data["rows"]) == set(rows)
    assert data["meta"]["split"] == "test" and data["meta"]["size_override"] == 32
    c = data["rows"]["denoise/s01/page"]["cells"]["classical"]
    assert c["note"] == "identity" and c["calls"] == 0 and c["psnr"] > 20
    # --methods merges a new method in and keeps the old one
    assert gen.main([*base, "--methods", "default"]) == 0
    data = json.loads(js.read_text())
    for r in rows:
        assert set(data["rows"][r]["cells"]) == {"classical", "default"}
    dn = data["rows"]["denoise/s01/page"]["cells"]["default"]
    assert dn["psnr"] is not None and dn["calls"] == 1  # denoising: one FFDNet call
    assert data["rows"]["gaussian/s07/page"]["cells"]["default"]["calls"] > 1
    # --resume skips what is there (the file is unchanged)
    before = js.read_text()
    assert gen.main([*base, "--methods", "default", "classical", "--resume"]) == 0
    assert json.loads(js.read_text())["rows"] == json.loads(before)["rows"]
    report = md.read_text()
    assert "| denoise | 1 |" in report and "| **all** | 2 |" in report
    out2 = tmp_path / "again.md"
    assert gen.main(["--from-json", str(js), "--out", str(out2)]) == 0
    assert out2.read_text() == gen.render_report(json.loads(js.read_text()))
