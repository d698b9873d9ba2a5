"""The sweep ``pnpdiff.problem``'s rule was chosen on (issue 27): tuning photos only.

Three tuning photos (astronaut, coffee, camera -- all in the tuning half of
``generalisation.py``) at 128 px, Gaussian noise sigma_y 0.01 / 0.025 / 0.05 (seed 0), and a grid
of settings: HQS (``dpir``) lam {0.05, 0.1, 0.23, 0.5, 1} x steps {8, 16, 24} and DiffPIR lam
{0.25, 0.5, 1} x zeta {0.3, 1} (its own steps), on 10 blurs, 6 super-resolutions and 4 masks.

Usage (from the repository root; each ``run`` takes 5 to 10 minutes on 2 CPU cores)::

    python tests/benchmarks/rule_sweep.py run blur /tmp/sweep_blur.json
    python tests/benchmarks/rule_sweep.py run sr /tmp/sweep_sr.json
    python tests/benchmarks/rule_sweep.py run inp /tmp/sweep_inp.json
    python tests/benchmarks/rule_sweep.py table /tmp/sweep_blur.json /tmp/sweep_sr.json /tmp/sweep_inp.json

``table`` prints the Markdown table of docs/quality.md section 5: per degradation and noise level,
the rule's choice, the best grid point (mean over the photos) and the gaps.
"""

from __future__ import annotations

import collections
import itertools
import json
import sys
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pnpdiff  # noqa: E402
from pnpdiff.io import load_source_image  # noqa: E402
from pnpdiff.metrics import psnr  # noqa: E402
from pnpdiff.operators import (  # noqa: E402
    Blur,
    Downsample,
    GaussianBlur,
    Inpaint,
    MotionBlur,
    UniformBlur,
    box_mask,
    random_mask,
)
from pnpdiff.problem import choose  # noqa: E402

S = 128
PHOTOS = ("astronaut", "coffee", "camera")
SIGMAS = (0.01, 0.025, 0.05)


def _deepinv_kernel(kind: str, seed: int, size: int = 31) -> Blur:
    from deepinv.physics.generator import DiffractionBlurGenerator, MotionBlurGenerator

    gen = {"motion": MotionBlurGenerator, "diffraction": DiffractionBlurGenerator}[kind]
    g = gen((size, size), rng=torch.Generator().manual_seed(seed))
    return Blur(g.step(1, seed=seed)["filter"][0, 0], boundary="circular")


def operators(kind: str) -> dict[str, tuple[str, object]]:
    """name -> (description, operator) of one kind: ``blur``, ``sr`` or ``inp``."""
    if kind == "blur":
        ops = {f"g{s}": (f"Gaussian {s} px", GaussianBlur(s)) for s in (0.5, 1, 2, 3, 4)}
        ops["dim1"] = ("deepinv motion 31 px", _deepinv_kernel("motion", 2))
        ops["dim15"] = ("deepinv motion 15 px", _deepinv_kernel("motion", 4, 15))
        ops["diffr"] = ("deepinv diffraction 31 px", _deepinv_kernel("diffraction", 2))
        ops["m61"] = ("MotionBlur(61, 0.5)", MotionBlur(61, 0.5, seed=0))
        ops["u5"] = ("UniformBlur(5)", UniformBlur(5))
        return ops
    if kind == "sr":
        return {f"sr{f}{flt[0]}": (f"x{f} {flt}", Downsample(f, filter=flt)) for f in (2, 4, 8)
                for flt in ("bicubic", "gaussian")}
    ops = {f"rnd{int(p * 100)}": (f"{int(p * 100)} % missing", Inpaint(random_mask((1, 1, S, S), p, seed=2)))
           for p in (0.2, 0.5, 0.9)}
    ops["box"] = ("48 px box", Inpaint(box_mask((1, 1, S, S), 48)))
    return ops


def grid() -> dict[str, dict]:
    cfgs = {f"dpir l{lam} s{st}": dict(method="dpir", lam=lam, steps=st)
            for lam, st in itertools.product((0.05, 0.1, 0.23, 0.5, 1.0), (8, 16, 24))}
    cfgs.update({f"diffpir l{lam} z{z}": dict(method="diffpir", lam=lam, zeta=z)
                 for lam, z in itertools.product((0.25, 0.5, 1.0), (0.3, 1.0))})
    return cfgs


def run(kind: str, out: str) -> None:
    prior = pnpdiff.load_prior("natural")
    res = []
    for photo in PHOTOS:
        x, _ = load_source_image(f"skimage:{photo}", S)
        x = x.unsqueeze(0) if x.dim() == 3 else x
        for (name, (_, op)), sy in itertools.product(operators(kind).items(), SIGMAS):
            ax = op(x)
            y = ax + sy * torch.randn(ax.shape, generator=torch.Generator().manual_seed(0))
            for cn, kw in grid().items():
                o = pnpdiff.solve(y, op, prior, sigma_y=sy, seed=0, progress=False, **kw)
                res.append(dict(photo=photo, op=name, sy=sy, cfg=cn, psnr=psnr(o, x).item()))
            Path(out).write_text(json.dumps(res))
            print(photo, name, sy, flush=True)


def _key(c) -> str:
    o = c.options
    if c.method == "dpir":
        return f"dpir l{o['lam']} s{min(int(o['steps']), 24)}"  # (the sweep's longest HQS run is 24 steps)
    return f"diffpir l{o['lam']} z{o['zeta']}"


def table(paths: list[str]) -> None:
    ops = {k: v for kind in ("blur", "sr", "inp") for k, v in operators(kind).items()}
    by: dict = collections.defaultdict(lambda: collections.defaultdict(list))
    for p in paths:
        for r in json.loads(Path(p).read_text()):
            by[(r["op"], r["sy"])][r["cfg"]].append(r["psnr"])
    print("| degradation | sigma_y | d | rule's choice | best of the grid (PSNR) | rule - best | "
          "DPIR's settings (lam 0.23, 8 steps) - best | previous default - best |")
    print("|---|---|---|---|---|---|---|---|")
    gaps = []
    for (name, sy), d in by.items():
        m = {c: sum(v) / len(v) for c, v in d.items()}
        best = max(m, key=m.get)
        desc, op = ops[name]
        c = choose(op, (1, 3, S, S), sy, op.task, "diffpir")
        g = m[_key(c)] - m[best]
        gaps.append(g)
        print(f"| {desc} | {sy} | {c.informative:.3f} | {_key(c)} | {best} ({m[best]:.2f}) | {g:+.2f} | "
              f"{m['dpir l0.23 s8'] - m[best]:+.2f} | {m['diffpir l0.5 z1.0'] - m[best]:+.2f} |")
    print(f"\nrule - best: mean {sum(gaps) / len(gaps):+.3f} dB, worst {min(gaps):+.3f} dB over {len(gaps)} rows")


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    if sys.argv[1:2] == ["run"]:
        run(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["table"]:
        table(sys.argv[2:])
    else:
        raise SystemExit(__doc__)
