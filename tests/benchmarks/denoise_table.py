"""Denoising benchmark: ``solve``'s denoising default against one call of the same denoiser.

For each photo (centre-cropped to a square and resized to 256x256 with an antialiased bicubic
filter, as ``pnpdiff.io.load_source_image`` does) and each noise level ``sigma_y``, the clean
image gets white Gaussian noise from a generator seeded per row (``crc32("photo:sigma_y")``) and
every column restores the same ``y`` with the ``"natural"`` (FFDNet) prior:

=================  =============================================================================
column             what runs
=================  =============================================================================
``noisy``          ``y`` itself
``one call``       ``load_prior("natural").denoise(y, sigma_y)`` (clamped to [0, 1])
``mmse``           ``solve(y, Identity(), sigma_y=s, method="mmse")`` -- the new default
``default``        ``solve(y, Identity(), sigma_y=s)`` -- whatever ``solve`` picks with no method
``estimated``      ``solve(y, Identity())`` -- no ``sigma_y``: the noise level estimated from ``y``
``old diffpir``    ``solve(y, Identity(), sigma_y=s, method="diffpir")`` -- the old default:
                   20 steps from FFDNet's 75/255 down to 0
``diffpir@s``      the same 20 DiffPIR steps started at ``sigma_y`` (``schedule_max=s``)
``dpir@s``         DPIR's 8 iterations at the constant level ``sigma_y`` (``schedule_max=s``,
                   ``schedule_min="sigma_y"``; one iteration would be exactly ``one call``)
``ode@s``          the probability-flow ODE (DDIM, eta 0) started from ``y`` itself at
                   ``sigma_y``, 3 Karras steps down to 0 (one step would be ``one call``)
``mmse-fn``        ``pnpdiff.solvers.mmse(y, Identity(), prior, None, s)`` called directly (only
                   with ``--columns``: ``solve`` refuses a ``y`` that strong noise pushes far
                   outside [0, 1], which the solver function itself accepts)
=================  =============================================================================

PSNR is :func:`pnpdiff.metrics.psnr` on [0, 1] images (results clamped to [0, 1]). Seconds are
wall-clock per run on ``--device``; the seconds table gives the mean over the rows and the ratio
to ``one call``. The acceptance check -- ``default`` (and ``mmse``, ``mmse-fn``) at or above
``one call`` on every row -- is printed at the end; the exit status is 1 when it fails, else 0.

Photos: scikit-image's ``astronaut``, ``chelsea``, ``coffee``, ``rocket``, ``camera`` (grey: kept
as one channel, which the natural prior denoises with its grey-noise rule) and any other
``skimage.data`` image, and scikit-learn's ``china`` / ``flower`` (``load_sample_image``; needs
``pip install scikit-learn``).

Usage (from the repository root; about 5 minutes on two idle CPU cores)::

    python tests/benchmarks/denoise_table.py --out docs/denoising.md
    python tests/benchmarks/denoise_table.py --photos astronaut --sigmas 0.05 --columns one-call mmse

With ``--out`` the tables replace the part of the page between the ``<!-- denoise-table -->``
markers (``<!-- denoise-table:NAME -->`` with ``--section NAME``); the rest of the page is kept,
and a page without the markers gets the tables appended. Noise levels above the prior's
``sigma_max`` (75/255 for FFDNet) may be given: ``one call`` then runs the network at ``sigma_y``
as asked, while ``solve`` clips it to ``sigma_max`` and warns.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere, without an install
    sys.path.insert(0, str(ROOT))

import pnpdiff  # noqa: E402
from pnpdiff import schedules  # noqa: E402
from pnpdiff.metrics import psnr  # noqa: E402
from pnpdiff.operators import Identity  # noqa: E402
from pnpdiff.priors import load_prior  # noqa: E402
from pnpdiff.solvers import mmse  # noqa: E402
from pnpdiff.solvers.common import estimate_noise_level  # noqa: E402
from pnpdiff.solvers.samplers import ddim  # noqa: E402

SIZE = 256
DEFAULT_PHOTOS = ("astronaut", "coffee", "camera", "china", "flower")
DEFAULT_SIGMAS = (0.01, 0.025, 0.05, 0.1)
SKLEARN_PHOTOS = ("china", "flower")


def markers(section: str = "") -> tuple[str, str]:
    """The comments around the generated part of the page (one pair per ``--section``)."""
    tag = f"denoise-table:{section}" if section else "denoise-table"
    return f"<!-- {tag} -->", f"<!-- /{tag} -->"

#: column name -> (header, number of denoiser calls)
COLUMNS: dict[str, tuple[str, str]] = {
    "noisy": ("noisy", "0"),
    "one-call": ("one call", "1"),
    "mmse": ("mmse", "1"),
    "default": ("default", "1*"),
    "estimated": ("estimated σ̂", "1*"),
    "old-diffpir": ("old diffpir", "20"),
    "diffpir@s": ("diffpir@s", "20"),
    "dpir@s": ("dpir@s", "8"),
    "ode@s": ("ode@s", "3"),
    "mmse-fn": ("mmse()", "1"),
}
#: the columns run without ``--columns`` (``mmse-fn`` is for noise that ``solve`` refuses)
DEFAULT_COLUMNS = tuple(c for c in COLUMNS if c != "mmse-fn")
#: the columns that are "a schedule starting at sigma_y"
SCHEDULES_AT_S = ("diffpir@s", "dpir@s", "ode@s")


def load_photo(name: str, size: int = SIZE) -> torch.Tensor:
    """A test photo as a ``(1, C, size, size)`` float32 tensor in [0, 1] (C = 1 for grey photos):
    centre square, antialiased bicubic resize (the same steps as ``load_source_image``)."""
    from PIL import Image

    if name in SKLEARN_PHOTOS:
        try:
            from sklearn.datasets import load_sample_image
        except ImportError:
            raise SystemExit(f"photo {name!r} comes with scikit-learn: pip install scikit-learn "
                             "(or leave it out of --photos)") from None
        arr = load_sample_image(f"{name}.jpg")
    else:
        import skimage.data

        fn = getattr(skimage.data, name, None)
        if fn is None or not callable(fn):
            raise SystemExit(f"unknown photo {name!r}: use a skimage.data image (astronaut, chelsea, coffee, "
                             f"rocket, camera, ...) or one of {', '.join(SKLEARN_PHOTOS)}")
        arr = fn()
    pil = Image.fromarray(arr)
    pil = pil.convert("L") if pil.mode in ("L", "I", "I;16", "F", "1", "LA") else pil.convert("RGB")
    w, h = pil.size
    s = min(w, h)
    pil = pil.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    pil = pil.resize((size, size), Image.BICUBIC, reducing_gap=None)
    a = np.asarray(pil, dtype=np.float32) / 255.0
    t = torch.from_numpy(a.copy())
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    return t[None].contiguous()


def noisy(x: torch.Tensor, sigma_y: float, photo: str) -> torch.Tensor:
    """``x + sigma_y n`` with ``n`` from a generator seeded by ``crc32("photo:sigma_y")``."""
    seed = zlib.crc32(f"{photo}:{sigma_y:g}".encode())
    g = torch.Generator().manual_seed(seed)
    return x + sigma_y * torch.randn(x.shape, generator=g, dtype=x.dtype)


def methods(prior: torch.nn.Module, device: torch.device) -> dict[str, Callable[[torch.Tensor, float], torch.Tensor]]:
    """Column name -> ``f(y, sigma_y)`` returning the restored image."""
    op = Identity()

    def solve(y: torch.Tensor, s: float | None, **kw: object) -> torch.Tensor:
        return pnpdiff.solve(y, op, prior=prior, sigma_y=s, seed=0, device=device, progress=False, **kw)

    def ode(y: torch.Tensor, s: float) -> torch.Tensor:
        sig = schedules.get_schedule("karras", 3, sigma_min=min(0.002, s), sigma_max=s)
        with torch.no_grad():
            return ddim(prior, sig, y.to(device))

    def one_call(y: torch.Tensor, s: float) -> torch.Tensor:
        with torch.no_grad():
            return prior.denoise(y.to(device), s)

    return {
        "noisy": lambda y, s: y,
        "one-call": one_call,
        "mmse": lambda y, s: solve(y, s, method="mmse"),
        "default": lambda y, s: solve(y, s),
        "estimated": lambda y, s: solve(y, None),
        "old-diffpir": lambda y, s: solve(y, s, method="diffpir"),
        "diffpir@s": lambda y, s: solve(y, s, method="diffpir", schedule_max=s),
        "dpir@s": lambda y, s: solve(y, s, method="dpir", schedule_max=s, schedule_min="sigma_y"),
        "ode@s": ode,
        "mmse-fn": lambda y, s: mmse(y.to(device), op, prior, None, s),
    }


def render(rows: list[dict], columns: list[str], command: str, seconds: dict[str, list[float]],
           threads: int, device: torch.device, section: str = "") -> str:
    """The Markdown tables: PSNR per row (best in bold), the mean per sigma, seconds, the checks."""
    begin, end = markers(section)
    lines = [begin, "", f"Command: `{command}`  ", f"Device: {device}, {threads} torch threads; "
             f"{len(rows)} rows. PSNR in dB on [0, 1] images, the best of each row in **bold**.", ""]
    heads = [COLUMNS[c][0] for c in columns]
    lines.append("| photo | σ_y | " + " | ".join(heads) + " |")
    lines.append("|---|---|" + "---:|" * len(columns))

    def cells(vals: dict[str, float], extra: dict[str, str]) -> list[str]:
        best = max((v for c, v in vals.items() if c != "noisy"), default=None)
        out = []
        for c in columns:
            if c not in vals:
                out.append("")
                continue
            t = f"{vals[c]:.2f}"
            if c != "noisy" and best is not None and vals[c] >= best - 1e-9:
                t = f"**{t}**"
            out.append(t + extra.get(c, ""))
        return out

    sigmas = sorted({r["sigma"] for r in rows})
    for s in sigmas:
        group = [r for r in rows if r["sigma"] == s]
        for r in group:
            extra = {"estimated": f" ({r['sigma_hat']:.3f})"} if "sigma_hat" in r else {}
            lines.append(f"| {r['photo']} | {s:g} | " + " | ".join(cells(r["psnr"], extra)) + " |")
        if len(group) > 1:
            mean = {c: sum(r["psnr"][c] for r in group) / len(group) for c in columns
                    if all(c in r["psnr"] for r in group)}
            lines.append(f"| **mean** | {s:g} | " + " | ".join(cells(mean, {})) + " |")
    lines.append("")
    if "estimated" in columns:
        lines += ["`estimated σ̂`: `solve(y, Identity())` with the noise level estimated from `y` (the "
                  "estimate in brackets).", ""]
    lines += ["| column | denoiser calls | mean seconds | × one call |", "|---|---:|---:|---:|"]
    base = seconds.get("one-call")
    base_mean = sum(base) / len(base) if base else None
    for c in columns:
        if c == "noisy" or c not in seconds or not seconds[c]:
            continue
        m = sum(seconds[c]) / len(seconds[c])
        ratio = f"{m / base_mean:.1f}" if base_mean else ""
        lines.append(f"| {COLUMNS[c][0]} | {COLUMNS[c][1]} | {m:.2f} | {ratio} |")
    lines.append("")
    if "default" in columns or "estimated" in columns:
        lines += ["1*: one call when `solve` picks `mmse` for the identity operator.", ""]
    lines += checks(rows, columns)
    lines += ["", end]
    return "\n".join(lines) + "\n"


def checks(rows: list[dict], columns: list[str]) -> list[str]:
    """Markdown bullets: is the default at or above one call everywhere; did a schedule at sigma_y
    beat one call anywhere."""
    out = []
    if "one-call" not in columns:
        return out
    for c in ("default", "mmse", "mmse-fn"):
        if c not in columns:
            continue
        d = [r["psnr"][c] - r["psnr"]["one-call"] for r in rows]
        ok = all(v >= -1e-9 for v in d)
        out.append(f"- `{COLUMNS[c][0]}` − `one call`: min {min(d):+.3f} dB, max {max(d):+.3f} dB over "
                   f"{len(d)} rows: {'at or above one call on every row' if ok else 'BELOW one call on some row'}.")
    for c in SCHEDULES_AT_S:
        if c not in columns:
            continue
        d = [(r["psnr"][c] - r["psnr"]["one-call"], r) for r in rows]
        wins = [f"{r['photo']} σ_y={r['sigma']:g} ({v:+.2f})" for v, r in d if v > 1e-9]
        best = max(d, key=lambda t: t[0])
        out.append(f"- `{COLUMNS[c][0]}` − `one call`: best {best[0]:+.2f} dB ({best[1]['photo']}, "
                   f"σ_y={best[1]['sigma']:g}); beats one call on "
                   + (", ".join(wins) if wins else "no row") + ".")
    return out


def accepted(rows: list[dict], columns: list[str]) -> bool:
    """``default``, ``mmse`` and ``mmse-fn`` (those that ran) are at or above ``one call`` on every row."""
    if "one-call" not in columns:
        return True
    return all(r["psnr"][c] >= r["psnr"]["one-call"] - 1e-9 for r in rows
               for c in ("default", "mmse", "mmse-fn") if c in columns)


def write_out(path: Path, table: str, section: str = "") -> None:
    """Replace the marked part of ``path`` with ``table``: in place of the section's markers, else
    appended to the page (or the whole file when there is none)."""
    begin, end = markers(section)
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = head + table.rstrip("\n") + tail
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + table
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", nargs="+", default=list(DEFAULT_PHOTOS),
                    help=f"photos (default: {' '.join(DEFAULT_PHOTOS)})")
    ap.add_argument("--sigmas", nargs="+", type=float, default=list(DEFAULT_SIGMAS),
                    help=f"noise levels sigma_y in [0, 1] units (default: {' '.join(map(str, DEFAULT_SIGMAS))})")
    ap.add_argument("--columns", nargs="+", default=list(DEFAULT_COLUMNS), choices=list(COLUMNS), metavar="COLUMN",
                    help=f"columns to run (default all but mmse-fn): {' '.join(COLUMNS)}")
    ap.add_argument("--size", type=int, default=SIZE, help="image side (default 256)")
    ap.add_argument("--device", default="cpu", help="default cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--out", default=None, help="Markdown file to write the tables into (see above)")
    ap.add_argument("--section", default="", help="name of the marked part of --out to replace (default: the "
                    "main one, <!-- denoise-table -->; NAME: <!-- denoise-table:NAME -->)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    columns = [c for c in COLUMNS if c in args.columns]
    device = torch.device(args.device)
    prior = load_prior("natural").to(device)
    run = methods(prior, device)
    shown = ["python tests/benchmarks/denoise_table.py", *(argv if argv is not None else sys.argv[1:])]
    command = " ".join(shown)

    photos = {p: load_photo(p, args.size) for p in args.photos}
    rows: list[dict] = []
    seconds: dict[str, list[float]] = {c: [] for c in columns}
    for s in args.sigmas:
        for name, x in photos.items():
            y = noisy(x, float(s), name)
            row: dict = {"photo": name, "sigma": float(s), "psnr": {}}
            if "estimated" in columns:
                row["sigma_hat"] = estimate_noise_level(y)
            for c in columns:
                t0 = time.perf_counter()
                out = run[c](y, float(s))
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds[c].append(time.perf_counter() - t0)
                out = out.detach().to("cpu", torch.float32)
                out = out if c == "noisy" else out.clamp(0, 1)  # the noisy PSNR is the noise's
                row["psnr"][c] = float(psnr(out, x)[0])
            rows.append(row)
            print(f"{name:>10} {s:<6g} " + " ".join(f"{c}={v:.2f}" for c, v in row["psnr"].items()), flush=True)

    table = render(rows, columns, command, seconds, torch.get_num_threads(), device, args.section)
    print(table)
    if args.out:
        write_out(Path(args.out), table, args.section)
    ok = accepted(rows, columns)
    if not ok:
        print("FAILED: the denoising default is below one denoiser call on some row", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
