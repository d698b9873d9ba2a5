"""Issue 14 on images: DAPS and PnP-DM beside DiffPIR (and DPS) with real priors.

Three tables, printed as Markdown (``docs/posterior.md`` holds the last run):

``photos``
    the quality table's tasks (``tests/benchmarks/quality.py``: gauss-deblur, motion-deblur, sr4,
    inpaint-random, inpaint-box; same operators -- the box's side is half the image's, 128 at
    256x256 as there -- noise ``sigma_y = 0.025`` drawn with seed 0) on
    scikit-image photos at ``--size`` with the ``natural`` (FFDNet) prior; every method through
    ``pnpdiff.solve`` with its defaults, seed 0.
``digits``
    the held-out restoration tasks of ``tests/benchmarks/digits_eval.py`` (inpaint 50 %, SR x2,
    Gaussian deblur 1 px; ``sigma_y = 0.05``; the same mask and noise draws, the noise drawn for all
    297 held-out digits and the first ``--digits`` kept) with the ``digits`` prior.
``saturation``
    the nonlinear saturation-and-blur camera (``pnpdiff.operators.SaturatedBlur``) on both: held-out
    digits (blur 1 px, gain 3, ``sigma_y = 0.05``, ``digits`` prior) and photos (blur 2 px, gain 3,
    ``sigma_y = 0.025``, ``natural`` prior).

PSNR / SSIM are :func:`pnpdiff.metrics.psnr` / :func:`~pnpdiff.metrics.ssim` of the result clamped
to [0, 1] (digits: the mean over the digits); seconds are wall-clock per run (a digits run restores
the whole batch at once). Not a test; run by hand (tens of minutes on a CPU)::

    python tests/benchmarks/posterior_images.py photos --size 128 --photos astronaut coffee
    python tests/benchmarks/posterior_images.py digits --digits 100
    python tests/benchmarks/posterior_images.py saturation --digits 100 --size 128

``--methods`` picks the methods, ``--json FILE`` also writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from quality import TASKS  # noqa: E402

import pnpdiff  # noqa: E402
from pnpdiff import Downsample, GaussianBlur, Inpaint, box_mask, random_mask  # noqa: E402
from pnpdiff.datasets import digits  # noqa: E402
from pnpdiff.io import load_source_image  # noqa: E402
from pnpdiff.metrics import psnr, ssim  # noqa: E402
from pnpdiff.operators import SaturatedBlur  # noqa: E402

PHOTO_METHODS = ("diffpir", "daps", "pnpdm")
DIGIT_METHODS = ("diffpir", "dps", "daps", "pnpdm")
SAT_METHODS = ("dps", "daps", "pnpdm", "reddiff")


def _noisy(op: Any, x: torch.Tensor, sigma_y: float, seed: int) -> torch.Tensor:
    with torch.no_grad():
        clean = op(x)
    return clean + sigma_y * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed), dtype=clean.dtype)


def _run(method: str, x: torch.Tensor, y: torch.Tensor, op: Any, prior: Any, sigma_y: float) -> dict[str, Any]:
    """One ``pnpdiff.solve`` call scored against ``x`` (mean PSNR / SSIM over the batch)."""
    t0 = time.perf_counter()
    try:
        out = pnpdiff.solve(y, op, prior=prior, method=method, sigma_y=sigma_y, seed=0, progress=False)
    except pnpdiff.PnPError as err:
        return {"note": f"n/a: {err}"}
    sec = time.perf_counter() - t0
    out = out.detach().float()
    if not bool(torch.isfinite(out).all()):
        return {"note": "non-finite output", "seconds": sec}
    out = out.clamp(0, 1)
    return {"psnr": float(psnr(out, x).mean()), "ssim": float(ssim(out, x).mean()), "seconds": sec}


def _cell(r: dict[str, Any], best: float | None) -> str:
    if "psnr" not in r:
        return r.get("note", "")[:60]
    p = f"{r['psnr']:.2f}"
    if best is not None and r["psnr"] >= best - 1e-9:
        p = f"**{p}**"
    return f"{p} / {r['ssim']:.3f} ({r['seconds']:.1f} s)"


def _print_table(title: str, rows: list[tuple[str, str, dict[str, dict[str, Any]]]], methods: list[str]) -> None:
    print(f"\n{title}\n")
    print("| task | image | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for task, image, res in rows:
        best = max((r["psnr"] for r in res.values() if "psnr" in r), default=None)
        print(f"| {task} | {image} | " + " | ".join(_cell(res.get(m, {}), best) for m in methods) + " |", flush=True)


def _photo_rows(tasks: dict[str, Any], photos: list[str], size: int, methods: list[str], sigma_y: float,
                raw: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, dict[str, Any]]]]:
    prior = pnpdiff.load_prior("natural")
    rows = []
    for tname, make in tasks.items():
        per_photo = []
        for photo in photos:
            x = load_source_image(f"skimage:{photo}", size)[0]
            op = make(tuple(x.shape))
            y = _noisy(op, x, sigma_y, 0)
            res = {}
            for m in methods:
                print(f"[{tname} / {photo}] {m} ...", file=sys.stderr, flush=True)
                res[m] = _run(m, x, y, op, prior, sigma_y)
                raw.append({"task": tname, "image": photo, "method": m, **res[m]})
                print(f"    {res[m]}", file=sys.stderr, flush=True)
            rows.append((tname, photo, res))
            per_photo.append(res)
        if len(photos) > 1:
            mean = {}
            for m in methods:
                rs = [r[m] for r in per_photo]
                if all("psnr" in r for r in rs):
                    mean[m] = {k: sum(r[k] for r in rs) / len(rs) for k in ("psnr", "ssim", "seconds")}
            rows.append((tname, "**mean**", mean))
    return rows


def _digit_rows(tasks: dict[str, Any], n: int, methods: list[str], sigma_y: float,
                raw: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, dict[str, Any]]]]:
    prior = pnpdiff.load_prior("digits")
    x_all, _ = digits("heldout", 16)
    x = x_all[:n]
    rows = []
    for tname, op in tasks.items():
        y = _noisy(op, x_all, sigma_y, 1)[:n]  # digits_eval's draw (all 297), then the first n
        res = {}
        for m in methods:
            print(f"[{tname} / digits] {m} ...", file=sys.stderr, flush=True)
            res[m] = _run(m, x, y, op, prior, sigma_y)
            raw.append({"task": tname, "image": f"{n} held-out digits", "method": m, **res[m]})
            print(f"    {res[m]}", file=sys.stderr, flush=True)
        rows.append((tname, f"{n} held-out digits", res))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table", choices=("photos", "digits", "saturation"))
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--tasks", nargs="+", default=None, help="photos: quality.py task names (default all)")
    ap.add_argument("--photos", nargs="+", default=["astronaut", "coffee", "chelsea"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--digits", type=int, default=297, help="number of held-out digits (the first N)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    raw: list[dict[str, Any]] = []
    cmd = "python tests/benchmarks/posterior_images.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"Generated by `{cmd}` (torch {torch.__version__}, {torch.get_num_threads()} thread(s)). "
          "Cells: PSNR (dB) / SSIM (seconds per run); best PSNR of each row in bold.")
    if a.table == "photos":
        methods = a.methods or list(PHOTO_METHODS)
        names = a.tasks or list(TASKS)
        tasks = {t: TASKS[t].make_operator for t in names}
        if "inpaint-box" in tasks:  # the quality table's centred 128^2 box at 256^2: half the side at any size
            tasks["inpaint-box"] = lambda s: Inpaint(box_mask((1, 1, *s[-2:]), s[-1] // 2))
        rows = _photo_rows(tasks, a.photos, a.size, methods, 0.025, raw)
        _print_table(f"### Photos, `natural` prior, {a.size}x{a.size}, sigma_y = 0.025", rows, methods)
    elif a.table == "digits":
        methods = a.methods or list(DIGIT_METHODS)
        g = torch.Generator().manual_seed(0)
        tasks = {"inpaint 50 %": Inpaint(random_mask((16, 16), 0.5, generator=g)), "SR x2": Downsample(2),
                 "Gaussian deblur (1 px)": GaussianBlur(1.0)}
        rows = _digit_rows(tasks, a.digits, methods, 0.05, raw)
        _print_table("### Held-out digits, `digits` prior, sigma_y = 0.05", rows, methods)
    else:
        methods = a.methods or list(SAT_METHODS)
        rows = _digit_rows({"SaturatedBlur(1, gain 3)": SaturatedBlur(1.0, 3.0)}, a.digits, methods, 0.05, raw)
        _print_table("### Saturation and blur, held-out digits, `digits` prior, sigma_y = 0.05", rows, methods)
        rows = _photo_rows({"SaturatedBlur(2, gain 3)": lambda s: SaturatedBlur(2.0, 3.0)}, a.photos, a.size,
                           methods, 0.025, raw)
        _print_table(f"### Saturation and blur, photos, `natural` prior, {a.size}x{a.size}, sigma_y = 0.025",
                     rows, methods)
    if a.json:
        Path(a.json).write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
