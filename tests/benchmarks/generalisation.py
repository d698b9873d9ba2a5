"""Generalisation benchmark: ``solve()``'s defaults on degradations drawn from families, with a fixed
tuning / test split (issue 27).

The quality table (``tests/benchmarks/quality.py``) asks five fixed degradations; this benchmark
asks *families* of them, each drawn as several instances by a seeded generator, so that a default
tuned on a few problems is measured on problems nobody tuned it for.

**Rows.** A row is (kind of degradation, instance seed, photo, image size, ``sigma_y``); its
parameters are drawn by ``random.Random("KIND:SEED")`` (the same on every machine). Kinds, by family:

==========  ====================  =============================================================
family      kind                  instances (parameters drawn per row)
==========  ====================  =============================================================
blur        ``dinv-motion``       deepinv ``MotionBlurGenerator``, PSF side 15..41 (odd)
blur        ``dinv-diffraction``  deepinv ``DiffractionBlurGenerator`` 31x31, ``fc`` 0.1..0.25
blur        ``dinv-gaussian``     deepinv ``GaussianBlurGenerator`` 25x25, anisotropic, sigma 0.5..4
blur        ``gaussian``          pnpdiff ``GaussianBlur(sigma)``, sigma 0.5..4
blur        ``uniform``           pnpdiff ``UniformBlur(size)``, size 3..9
blur        ``defocus``           disk kernel (normalised indicator), radius 2..6 px
blur        ``motion``            pnpdiff ``MotionBlur(size, intensity, seed)``, 21..61, 0.3..0.7
sr          ``sr``                ``Downsample(f, filter)``, f in 2, 3, 4, 8, ``bicubic`` and
                                  ``gaussian`` (sigma 0.4..0.7 f); every pair in each half
inpaint     ``inpaint-random``    ``random_mask``, 20..90 % missing
inpaint     ``inpaint-box``       ``box_mask`` at a random position, side 25..50 % of the image
inpaint     ``inpaint-freeform``  ``freeform_mask`` (seeded brush strokes)
denoise     ``denoise``           ``Identity`` (the default there is one FFDNet call)
==========  ====================  =============================================================

Blurs use ``boundary="circular"`` and, every third instance, ``"reflect"`` (``Blur`` supports
``circular``, ``reflect`` and ``zeros``; ``Downsample`` only ``circular``). ``sigma_y`` is drawn from
0.005, 0.01, 0.025, 0.05, 0.1 (Gaussian noise seeded by the row). Most rows are 128 px, the second
instance of every kind 256 px and three rows 512 px; super-resolution rows are cropped to the
largest multiple of the factor (126 px for x3). Photos are scikit-image's bundled ones that load
offline (colour and grey: scenes, faces, textures, microscopy, documents), centre-cropped and
resized by :func:`pnpdiff.io.load_source_image`; a photo smaller than a row's size is not used for it.

**Split.** Photos are split into :data:`TUNE_PHOTOS` and :data:`TEST_PHOTOS` (disjoint, each mixing
colour / grey and kinds) and instance seeds by parity (even: tuning, odd: test). A row is in the
tuning half iff its photo and its seed both are, in the test half iff both are; mixed rows are
dropped. Row ids (``KIND/sSEED/PHOTO``) are stable. Tune only on ``--split tune``; report only
``--split test`` (the default).

**Methods** (every one with the same ``natural`` FFDNet prior, the same ``y`` and the same operator):
``default`` (``pnpdiff.solve(y, A, prior, sigma_y=sigma_y, seed=0)``, ``method=None``),
``calibrate`` (the same with ``calibrate=True``; ``n/a`` where ``solve`` does not take it),
``deepinv-dpir`` and ``deepinv-diffpir`` (deepinv's own algorithms, see ``quality.py``),
``classical`` (Wiener -- on the circular model for a reflect blur --, bicubic, biharmonic, or ``y``
itself for denoising) and ``oracle``: the best PSNR over :data:`ORACLE_GRID` (pnpdiff's ``dpir`` and
``diffpir`` at a small grid of settings) and ``default``'s own result, chosen with the ground truth
(the winning grid point is recorded). ``--methods`` also takes the sampling solvers ``dps``,
``reddiff``, ``ddrm``, ``ddnm+``, ``pigdm``, ``daps`` (run with their defaults; ``n/a`` with the
reason where a method cannot take the operator). Denoiser calls are counted per solve (the prior's
``denoise`` is wrapped with a counter); PSNR is :func:`pnpdiff.metrics.psnr` on the result clamped
to [0, 1].

**Output.** ``--json`` is rewritten after every method of every row (an interrupted run keeps what
it did); ``--resume`` skips the (row, method) pairs already in it (errors are rerun); ``--methods``
with an existing ``--json`` reruns only those methods and merges them in. ``--out`` gets a Markdown
report: per family and per kind, the mean PSNR of every method, the mean and the *minimum* over rows
of ``default - deepinv-dpir``, the mean ``oracle - default`` and ``oracle - calibrate``, and the
denoiser calls per solve of ``default`` and ``calibrate``; ``--per-row`` adds a table of every row.
``--from-json`` re-renders a report without running anything. Exit status 1 if a run failed with an
error (``n/a`` does not count), else 0.

Usage (from the repository root)::

    python tests/benchmarks/generalisation.py --split test --json /tmp/gen_test.json --out /tmp/gen_test.md
    python tests/benchmarks/generalisation.py --split tune --json /tmp/gen_tune.json --out /tmp/gen_tune.md
    python tests/benchmarks/generalisation.py --list                         # the rows, no run
    python tests/benchmarks/generalisation.py --families sr inpaint-box --limit 4 --max-size 128
    python tests/benchmarks/generalisation.py --json /tmp/gen_test.json --resume   # go on after a stop
    python tests/benchmarks/generalisation.py --json /tmp/gen_test.json --methods calibrate  # rerun one
    python tests/benchmarks/generalisation.py --from-json /tmp/gen_test.json --out /tmp/gen.md --per-row
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import random
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _p in (ROOT, HERE):  # run as a script from anywhere; quality.py sits beside this file
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import pnpdiff  # noqa: E402
from pnpdiff import baselines  # noqa: E402
from pnpdiff.errors import PnPError  # noqa: E402
from pnpdiff.metrics import psnr  # noqa: E402

# -------------------------------------------------------------------------------------------------
# photos and the split
# -------------------------------------------------------------------------------------------------
#: scikit-image photos that load offline: name -> (colour?, kind, shorter side of the original)
PHOTOS: dict[str, tuple[bool, str, int]] = {
    "astronaut": (True, "face", 512),
    "coffee": (True, "scene", 400),
    "chelsea": (True, "animal face", 300),
    "retina": (True, "medical", 1411),
    "coins": (False, "objects", 303),
    "brick": (False, "texture", 512),
    "cell": (False, "microscopy", 550),
    "text": (False, "document", 172),
    "rocket": (True, "scene", 427),
    "immunohistochemistry": (True, "microscopy", 512),
    "hubble_deep_field": (True, "astronomy", 872),
    "camera": (False, "face", 512),
    "moon": (False, "scene", 512),
    "gravel": (False, "texture", 512),
    "grass": (False, "texture", 512),
    "page": (False, "document", 191),
}
#: the photos of the tuning half: every photo a default was ever tuned or measured on (the five of
#: docs/quality.md) is here, so the test half holds only photos no default has seen
TUNE_PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "rocket", "camera", "retina", "brick", "text")
#: the photos of the test half
TEST_PHOTOS: tuple[str, ...] = ("immunohistochemistry", "hubble_deep_field", "coins", "cell", "moon",
                                "gravel", "grass", "page")
SPLITS = ("tune", "test")
SIGMAS_Y = (0.005, 0.01, 0.025, 0.05, 0.1)


def split_of(photo: str, seed: int) -> str | None:
    """``"tune"`` when the photo and the seed (even) are both tuning ones, ``"test"`` when both are
    test ones (photo in :data:`TEST_PHOTOS`, odd seed), ``None`` for a mixed row (dropped)."""
    by_photo = "tune" if photo in TUNE_PHOTOS else "test" if photo in TEST_PHOTOS else None
    by_seed = "tune" if seed % 2 == 0 else "test"
    return by_photo if by_photo == by_seed else None


# -------------------------------------------------------------------------------------------------
# kinds of degradation and their rows
# -------------------------------------------------------------------------------------------------
def _strat(rng: random.Random, lo: float, hi: float, i: int, n: int, digits: int = 3) -> float:
    """A uniform draw in the ``i``-th of ``n`` equal strata of ``[lo, hi]``: the ``n`` instances of a
    kind in a half (each its own stratum, in a shuffled order) cover the whole range."""
    return round(lo + (hi - lo) * (i + rng.random()) / n, digits)


def _strat_pick(rng: random.Random, values: Sequence[int], i: int, n: int) -> int:
    """One of ``values`` (sorted) from the ``i``-th of ``n`` strata of the list."""
    return values[min(len(values) - 1, int(len(values) * (i + rng.random()) / n))]


def _blur_boundary(i: int) -> str:
    return "reflect" if i % 3 == 2 else "circular"


def _draw_dinv_motion(rng: random.Random, i: int, j: int, n: int) -> dict[str, Any]:
    return {"psf": _strat_pick(rng, range(15, 42, 2), j, n), "kernel_seed": rng.randrange(10_000),
            "boundary": _blur_boundary(i)}


def _draw_dinv_diffraction(rng: random.Random, i: int, j: int, n: int) -> dict[str, Any]:
    return {"psf": 31, "fc": _strat(rng, 0.1, 0.25, j, n, 4), "kernel_seed": rng.randrange(10_000),
            "boundary": _blur_boundary(i)}


def _draw_dinv_gaussian(rng: random.Random, i: int, j: int, n: int) -> dict[str, Any]:
    return {"psf": 25, "kernel_seed": rng.randrange(10_000), "boundary": _blur_boundary(i)}


def _draw_gaussian(rng: random.Random, i: int, j: int, n: int) -> dict[str, Any]:
    return {"sigma": _strat(rng, 0.5, 4.0, j, n), "boundary": _blur_boundary(i)}


def _draw_uniform(rng: random.Random, i: int, j: int, n: int) -> dict[str, Any]:
    return {"size": _strat_pick(rng, range(3, 10), j, n), "boundary": _blur_boundary(i)}


def _draw_defocus(rng: random.Random, i: int, j: int, n: int) -> dict[str, Any]:
    return {"radius": _strat(rng, 2.0, 6.0, j, n), "boundary": _blur_boundary(i)}


def _draw_motion(rng: random.Random, i: int, j: int, n: int) -> dict[str, Any]:
    return {"size": _strat_pick(rng, range(21, 62, 2), j, n), "intensity": round(rng.uniform(0.3, 0.7), 3),
            "kernel_seed": rng.randrange(10_000), "boundary": _blur_boundary(i)}


SR_FACTORS = (2, 3, 4, 8)
SR_FILTERS = ("bicubic", "gaussian")


def _draw_sr(rng: random.Random, i: int, j: int, n: int) -> dict[str, Any]:
    factor = SR_FACTORS[i % len(SR_FACTORS)]
    filt = SR_FILTERS[(i // len(SR_FACTORS)) % len(SR_FILTERS)]
    out: dict[str, Any] = {"factor": factor, "filter": filt}
    if filt == "gaussian":
        out["sigma"] = round(factor * rng.uniform(0.4, 0.7), 3)
    return out


def _draw_inpaint_random(rng: random.Random, i: int, j: int, n: int) -> dict[str, Any]:
    return {"p_missing": _strat(rng, 0.2, 0.9, j, n), "mask_seed": rng.randrange(10_000)}


def _draw_inpaint_box(rng: random.Random, i: int, j: int, n: int) -> dict[str, Any]:
    return {"box_fraction": _strat(rng, 0.25, 0.5, j, n), "mask_seed": rng.randrange(10_000)}


def _draw_inpaint_freeform(rng: random.Random, i: int, j: int, n: int) -> dict[str, Any]:
    return {"mask_seed": rng.randrange(10_000)}


def _draw_denoise(rng: random.Random, i: int, j: int, n: int) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Kind:
    """A kind of degradation: its family, how many instances per half, how to draw one."""

    name: str
    family: str
    per_half: int
    draw: Callable[[random.Random, int, int, int], dict[str, Any]]
    big: tuple[int, ...] = ()  # instance indices (per half) run at 512 px


KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("dinv-motion", "blur", 4, _draw_dinv_motion, big=(3,)),
    Kind("dinv-diffraction", "blur", 4, _draw_dinv_diffraction),
    Kind("dinv-gaussian", "blur", 4, _draw_dinv_gaussian),
    Kind("gaussian", "blur", 4, _draw_gaussian),
    Kind("uniform", "blur", 3, _draw_uniform),
    Kind("defocus", "blur", 4, _draw_defocus),
    Kind("motion", "blur", 4, _draw_motion),
    Kind("sr", "sr", 8, _draw_sr, big=(6,)),
    Kind("inpaint-random", "inpaint", 5, _draw_inpaint_random, big=(3,)),
    Kind("inpaint-box", "inpaint", 3, _draw_inpaint_box),
    Kind("inpaint-freeform", "inpaint", 4, _draw_inpaint_freeform),
    Kind("denoise", "denoise", 4, _draw_denoise),
]}
FAMILIES: tuple[str, ...] = ("blur", "sr", "inpaint", "denoise")


@dataclass(frozen=True)
class Row:
    """One benchmark row: everything needed to rebuild its measurement."""

    id: str
    family: str
    kind: str
    seed: int
    photo: str
    size: int
    sigma_y: float
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    @property
    def split(self) -> str | None:
        """The half the row belongs to (see :func:`split_of`)."""
        return split_of(self.photo, self.seed)

    @property
    def noise_seed(self) -> int:
        """Seed of the measurement noise (stable: a CRC of ``KIND:SEED``)."""
        return zlib.crc32(f"{self.kind}:{self.seed}".encode())

    def describe(self) -> str:
        """The degradation in a few words, e.g. ``gaussian sigma=1.2 circular``."""
        parts = [f"{k}={v}" for k, v in self.params.items() if not k.endswith("seed") and k != "boundary"]
        if "boundary" in self.params:
            parts.append(self.params["boundary"])
        return " ".join([self.kind, *parts])


def _row_size(kind: Kind, i: int, params: dict[str, Any]) -> int:
    size = 512 if i in kind.big else 256 if i == 1 else 128
    f = int(params.get("factor", 1))
    return size - size % f


def all_rows() -> list[Row]:
    """Every row of both halves, in a fixed order (kind, half, instance).

    Instance ``i`` of a kind in a half has seed ``2 i`` (tuning) or ``2 i + 1`` (test) and a photo
    of that half (one round robin over the half's photos through all kinds, skipping photos
    smaller than the row), so no row is mixed. Its parameters are drawn by
    ``random.Random("KIND:SEED")``, stratified so that a kind's instances in a half cover each
    parameter's range (the strata shuffled by ``random.Random("KIND:PARITY")``); ``sigma_y`` cycles
    through :data:`SIGMAS_Y` from an offset drawn by the same generator.
    """
    rows: list[Row] = []
    for parity, photos in ((0, TUNE_PHOTOS), (1, TEST_PHOTOS)):
        turn = 0  # round robin over the half's photos, across kinds
        for kind in KINDS.values():
            kind_rng = random.Random(f"{kind.name}:{parity}")
            offset = kind_rng.randrange(len(SIGMAS_Y))  # sigma_y of instance i: SIGMAS_Y[offset + i]
            strata = kind_rng.sample(range(kind.per_half), kind.per_half)  # parameters of i: stratum strata[i]
            for i in range(kind.per_half):
                seed = 2 * i + parity
                rng = random.Random(f"{kind.name}:{seed}")
                params = kind.draw(rng, i, strata[i], kind.per_half)
                size = _row_size(kind, i, params)
                while PHOTOS[photos[turn % len(photos)]][2] < size:  # no upscaled photo
                    turn += 1
                photo = photos[turn % len(photos)]
                turn += 1
                rows.append(Row(f"{kind.name}/s{seed:02d}/{photo}", kind.family, kind.name, seed, photo, size,
                                SIGMAS_Y[(offset + i) % len(SIGMAS_Y)], params))
    order = {k: j for j, k in enumerate(KINDS)}
    rows.sort(key=lambda r: (order[r.kind], r.seed))
    return rows


def select_rows(
    split: str, families: Sequence[str] | None = None, ids: Sequence[str] | None = None,
    max_size: int | None = None, limit: int | None = None,
) -> list[Row]:
    """The rows of one half, optionally only some families/kinds, ids, sizes, or the first ``limit``."""
    rows = [r for r in all_rows() if r.split == split]
    if families:
        unknown = [f for f in families if f not in FAMILIES and f not in KINDS]
        if unknown:
            raise SystemExit(f"unknown family or kind {unknown}; known: {', '.join([*FAMILIES, *KINDS])}")
        rows = [r for r in rows if r.family in families or r.kind in families]
    if ids:
        known = {r.id for r in rows}
        missing = [i for i in ids if i not in known]
        if missing:
            raise SystemExit(f"no row {missing} in the {split} half (see --list)")
        rows = [r for r in rows if r.id in ids]
    if max_size is not None:
        rows = [r for r in rows if r.size <= max_size]
    return rows[:limit] if limit is not None else rows


# -------------------------------------------------------------------------------------------------
# operators, measurements, classical baselines
# -------------------------------------------------------------------------------------------------
def disk_kernel(radius: float) -> torch.Tensor:
    """Defocus kernel: the normalised indicator of a disk of ``radius`` px (side ``2 ceil(r) + 1``)."""
    r = math.ceil(radius)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius**2).to(torch.float64)
    return k / k.sum()


def _dinv_kernel(kind: str, p: dict[str, Any]) -> torch.Tensor:
    from deepinv.physics.generator import DiffractionBlurGenerator, GaussianBlurGenerator, MotionBlurGenerator

    psf = (int(p["psf"]), int(p["psf"]))
    if kind == "dinv-motion":
        gen = MotionBlurGenerator(psf)
    elif kind == "dinv-diffraction":
        gen = DiffractionBlurGenerator(psf, fc=float(p["fc"]))
    else:
        gen = GaussianBlurGenerator(psf, sigma_min=0.5, sigma_max=4.0, isotropic=False)
    return gen.step(1, seed=int(p["kernel_seed"]))["filter"][0, 0].to(torch.float64)


def make_operator(row: Row, shape: Sequence[int]) -> Any:
    """The row's operator for images of ``shape`` ``(B, C, H, W)`` (masks are drawn at that shape)."""
    from pnpdiff.operators import (
        Blur,
        Downsample,
        GaussianBlur,
        Identity,
        Inpaint,
        MotionBlur,
        UniformBlur,
        box_mask,
        freeform_mask,
        random_mask,
    )

    p, mshape = row.params, (1, 1, *shape[-2:])
    if row.kind.startswith("dinv-"):
        return Blur(_dinv_kernel(row.kind, p), boundary=p["boundary"])
    if row.kind == "gaussian":
        return GaussianBlur(p["sigma"], boundary=p["boundary"])
    if row.kind == "uniform":
        return UniformBlur(p["size"], boundary=p["boundary"])
    if row.kind == "defocus":
        return Blur(disk_kernel(p["radius"]), boundary=p["boundary"])
    if row.kind == "motion":
        return MotionBlur(p["size"], p["intensity"], seed=p["kernel_seed"], boundary=p["boundary"])
    if row.kind == "sr":
        return Downsample(p["factor"], filter=p["filter"], sigma=p.get("sigma"))
    if row.kind == "inpaint-random":
        return Inpaint(random_mask(mshape, p["p_missing"], seed=p["mask_seed"]))
    if row.kind == "inpaint-box":
        side = max(1, round(p["box_fraction"] * min(shape[-2:])))
        return Inpaint(box_mask(mshape, side, position="random", margin=min(shape[-2:]) // 16, seed=p["mask_seed"]))
    if row.kind == "inpaint-freeform":
        return Inpaint(freeform_mask(mshape, seed=p["mask_seed"]))
    if row.kind == "denoise":
        return Identity()
    raise AssertionError(row.kind)


def measurement(row: Row, x: torch.Tensor, op: Any) -> torch.Tensor:
    """``y = A x + sigma_y n`` with ``n`` drawn from a generator seeded by :attr:`Row.noise_seed`."""
    with torch.no_grad():
        clean = op(x)
    g = torch.Generator().manual_seed(row.noise_seed)
    return clean + row.sigma_y * torch.randn(clean.shape, generator=g, dtype=clean.dtype)


def classical(row: Row, y: torch.Tensor, op: Any) -> tuple[torch.Tensor, str]:
    """The classical baseline of the row's family and its name."""
    if row.family == "blur":
        if getattr(op, "boundary", "circular") != "circular":
            from pnpdiff.operators import Blur

            circ = Blur(op.kernel[0] if op.kernel.shape[0] == 1 else op.kernel, boundary="circular").to(y.device)
            return baselines.wiener(y, circ, row.sigma_y), "Wiener (circular model)"
        return baselines.wiener(y, op, row.sigma_y), "Wiener"
    if row.family == "sr":
        return baselines.bicubic_upsample(y, row.params["factor"]), "bicubic"
    if row.family == "inpaint":
        return baselines.biharmonic_inpaint(y, op.mask), "biharmonic"
    return y.clone(), "identity"


# -------------------------------------------------------------------------------------------------
# methods
# -------------------------------------------------------------------------------------------------
DEFAULT = "default"
CALIBRATE = "calibrate"
ORACLE = "oracle"
CLASSICAL = "classical"
DEEPINV_DPIR = "deepinv-dpir"
DEEPINV_DIFFPIR = "deepinv-diffpir"
#: run unless --methods says otherwise (oracle last: it reuses default's result)
BASE_METHODS: tuple[str, ...] = (DEFAULT, CALIBRATE, DEEPINV_DPIR, DEEPINV_DIFFPIR, CLASSICAL, ORACLE)
#: sampling solvers, run with their defaults on request (--methods)
SAMPLING_METHODS: tuple[str, ...] = ("dps", "reddiff", "ddrm", "ddnm+", "pigdm", "daps")
ALL_METHODS: tuple[str, ...] = (*BASE_METHODS, *SAMPLING_METHODS)

_DPIR_GRID = [("dpir", {"lam": lam, "steps": steps}) for lam in (0.1, 0.23, 0.5) for steps in (8, 24)]
#: family -> the (method, options) the oracle tries (besides default's own result)
ORACLE_GRID: dict[str, list[tuple[str, dict[str, Any]]]] = {
    fam: [*_DPIR_GRID, *([("dpir", {"lam": 0.05, "steps": 40})] if fam == "inpaint" else []),
          *[("diffpir", {"lam": lam, "zeta": zeta, "steps": 50 if fam == "inpaint" else 20})
            for lam in (0.25, 0.5, 1.0) for zeta in (0.5, 1.0)]]
    for fam in FAMILIES
}


def grid_label(method: str, options: dict[str, Any]) -> str:
    """``dpir lam=0.23 steps=8``."""
    return " ".join([method, *(f"{k}={v}" for k, v in options.items())])


class CallCounter:
    """Wraps ``prior.denoise`` (an instance attribute) so that every call is counted."""

    def __init__(self, prior: Any) -> None:
        self.prior = prior
        self.calls = 0
        inner = prior.denoise

        def denoise(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return inner(*args, **kwargs)

        prior.denoise = denoise

    def reset(self) -> None:
        self.calls = 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if hasattr(value, "__dataclass_fields__"):
        return _jsonable(asdict(value))
    return str(value)


def solve_with_info(y: torch.Tensor, op: Any, prior: Any, **kwargs: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """``pnpdiff.solve(y, op, prior, **kwargs)`` and what it says it chose (``{}`` if nothing).

    The one place that knows how ``solve`` reports its choices: it asks for
    ``return_info=True`` and takes a ``(x, info)`` pair, or an object with ``.info`` or
    ``.metrics``; a ``solve`` that refuses ``return_info`` is called without it.
    """
    try:
        out = pnpdiff.solve(y, op, prior, return_info=True, **kwargs)
    except PnPError as err:
        if "return_info" not in str(err):
            raise
        return pnpdiff.solve(y, op, prior, **kwargs), {}
    if isinstance(out, tuple) and len(out) == 2:
        x, info = out
    else:
        x, info = out, getattr(out, "info", None) or getattr(out, "metrics", None) or {}
    if not isinstance(info, dict):
        info = {"info": info}
    return x, _jsonable(info)


@dataclass
class Cell:
    """One (row, method) result, or why there is none."""

    psnr: float | None = None
    seconds: float | None = None
    calls: int | None = None
    note: str = ""  # "n/a: ..." / "error: ..." / what ran
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.psnr is not None

    @property
    def failed(self) -> bool:
        return self.note.startswith("error")


def _score(out: Any, x: torch.Tensor) -> float:
    out = out.detach().to("cpu", torch.float32)
    if out.shape != x.shape:
        raise RuntimeError(f"output shape {tuple(out.shape)} != {tuple(x.shape)}")
    if not bool(torch.isfinite(out).all()):
        raise RuntimeError("non-finite output")
    return float(psnr(out.clamp(0, 1), x)[0])


def measure(fn: Callable[[], Any], x: torch.Tensor, counter: CallCounter) -> Cell:
    """Run ``fn`` (returning an image, or an ``(image, info)`` pair), time it, count its denoiser
    calls and score it against ``x``; a :class:`~pnpdiff.errors.PnPError` becomes ``n/a``, any other
    failure ``error``."""
    counter.reset()
    t0 = time.perf_counter()
    try:
        out = fn()
        info: dict[str, Any] = {}
        if isinstance(out, tuple):
            out, info = out
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        value = _score(out, x)
    except PnPError as err:
        print(f"    n/a: {type(err).__name__}: {err}", file=sys.stderr)
        return Cell(note=f"n/a: {err}", calls=counter.calls)
    except Exception as err:  # noqa: BLE001 - a benchmark reports every failure and goes on
        traceback.print_exc()
        return Cell(note=f"error: {type(err).__name__}: {err}", calls=counter.calls)
    return Cell(psnr=value, seconds=seconds, calls=counter.calls, info=info)


@dataclass
class Problem:
    """A row's measurement, ready to be solved."""

    row: Row
    x: torch.Tensor
    y: torch.Tensor
    op: Any
    device: torch.device
    physics: Any = None


def run_method(method: str, pb: Problem, prior: Any, counter: CallCounter, done: dict[str, Cell]) -> Cell:
    """Run one method on one problem (``done``: the row's cells so far, read by ``oracle``)."""
    import quality

    row, x, y, op, dev = pb.row, pb.x, pb.y, pb.op, pb.device
    common = {"sigma_y": row.sigma_y, "seed": 0, "device": dev, "progress": False}
    if method == DEFAULT:
        return measure(lambda: solve_with_info(y, op, prior, **common), x, counter)
    if method == CALIBRATE:
        return measure(lambda: solve_with_info(y, op, prior, calibrate=True, **common), x, counter)
    if method == CLASSICAL:
        name = [""]

        def run() -> torch.Tensor:
            out, name[0] = classical(row, y, op)
            return out

        cell = measure(run, x, counter)
        if cell.ok:
            cell.note = name[0]
        return cell
    if method in (DEEPINV_DPIR, DEEPINV_DIFFPIR):
        try:
            denoiser = quality.deepinv_denoiser(prior)
            if pb.physics is None:
                pb.physics = quality.deepinv_physics(op, row.sigma_y, tuple(x.shape))
        except ImportError as err:
            return Cell(note=f"n/a: deepinv is not available ({err})")
        except Exception as err:  # noqa: BLE001
            traceback.print_exc()
            return Cell(note=f"error: to_deepinv: {type(err).__name__}: {err}")
        if method == DEEPINV_DPIR:
            return measure(lambda: quality.run_deepinv_dpir(y, pb.physics, denoiser, row.sigma_y, dev), x, counter)
        return measure(lambda: quality.run_deepinv_diffpir(y, pb.physics, denoiser, row.sigma_y, dev, None, 0),
                       x, counter)
    if method == ORACLE:
        best: tuple[float, str] | None = None
        calls, seconds, failures = 0, 0.0, []
        base = done.get(DEFAULT)
        if base is not None and base.ok:
            best = (base.psnr, DEFAULT)  # type: ignore[assignment]
        for name, opts in ORACLE_GRID[row.family]:
            c = measure(lambda name=name, opts=opts: pnpdiff.solve(y, op, prior, method=name, **opts, **common),
                        x, counter)
            calls += c.calls or 0
            seconds += c.seconds or 0.0
            if c.ok and (best is None or c.psnr > best[0]):  # type: ignore[operator]
                best = (c.psnr, grid_label(name, opts))  # type: ignore[assignment]
            elif not c.ok:
                failures.append(f"{grid_label(name, opts)}: {c.note}")
        if best is None:
            return Cell(note="error: every oracle setting failed: " + "; ".join(failures), calls=calls)
        return Cell(psnr=best[0], seconds=seconds, calls=calls, note=best[1],
                    info={"winner": best[1], "failed": failures} if failures else {"winner": best[1]})
    if method in SAMPLING_METHODS:
        return measure(lambda: pnpdiff.solve(y, op, prior, method=method, **common), x, counter)
    return Cell(note=f"error: unknown method {method!r}")


# -------------------------------------------------------------------------------------------------
# results file and report
# -------------------------------------------------------------------------------------------------
def new_results(meta: dict[str, Any]) -> dict[str, Any]:
    """An empty results document: ``{"meta": ..., "rows": {id: {"row": ..., "cells": {method: ...}}}}``."""
    return {"meta": dict(meta), "rows": {}}


def put_cell(results: dict[str, Any], row: Row, method: str, cell: Cell) -> None:
    """Store a cell (and the row's description, the first time)."""
    entry = results["rows"].setdefault(row.id, {"row": asdict(row), "cells": {}})
    entry["row"] = asdict(row)
    entry["cells"][method] = asdict(cell)


def write_json(results: dict[str, Any], path: Path) -> None:
    """Atomic write (a temporary file renamed over ``path``)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)


def _cells(results: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Cell]]]:
    return [(e["row"], {m: Cell(**c) for m, c in e["cells"].items()}) for e in results["rows"].values()]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _diffs(group: list[dict[str, Cell]], a: str, b: str) -> list[float]:
    return [c[a].psnr - c[b].psnr for c in group  # type: ignore[operator]
            if a in c and b in c and c[a].ok and c[b].ok]


def aggregate(group: list[dict[str, Cell]], methods: Sequence[str]) -> dict[str, Any]:
    """Aggregates of a group of rows (each a ``{method: Cell}``).

    Returns ``rows``, ``psnr`` (method -> mean PSNR over the rows where it ran, and ``n``),
    ``default_minus_dpir`` (mean, min), ``oracle_minus_default`` and ``oracle_minus_calibrate``
    (means; every difference over the rows where both ran) and ``calls`` (method -> mean denoiser
    calls per solve).
    """
    out: dict[str, Any] = {"rows": len(group), "psnr": {}, "n": {}, "calls": {}}
    for m in methods:
        vals = [c[m].psnr for c in group if m in c and c[m].ok]
        out["psnr"][m] = _mean(vals)  # type: ignore[arg-type]
        out["n"][m] = len(vals)
        calls = [c[m].calls for c in group if m in c and c[m].ok and c[m].calls is not None]
        out["calls"][m] = _mean(calls)  # type: ignore[arg-type]
    d = _diffs(group, DEFAULT, DEEPINV_DPIR)
    out["default_minus_dpir"] = (_mean(d), min(d) if d else None)
    out["oracle_minus_default"] = _mean(_diffs(group, ORACLE, DEFAULT))
    out["oracle_minus_calibrate"] = _mean(_diffs(group, ORACLE, CALIBRATE))
    return out


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "" if v is None else fmt.format(v)


def _cell_text(msg: str, limit: int = 60) -> str:
    msg = " ".join(str(msg).split()).replace("|", "\\|")
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


def methods_in(results: dict[str, Any]) -> list[str]:
    """The methods that have a cell somewhere, in :data:`ALL_METHODS` order."""
    seen = {m for e in results["rows"].values() for m in e["cells"]}
    return [m for m in ALL_METHODS if m in seen] + sorted(seen - set(ALL_METHODS))


def choice_text(info: dict[str, Any]) -> str:
    """What a solve said it ran, in a few words: ``dpir 24 steps lam=0.1`` (and, for a calibrated
    solve, what the calibration picked, when it says so); ``""`` when it said nothing."""
    if not info:
        return ""
    opts = info.get("options") if isinstance(info.get("options"), dict) else {}
    parts = [str(info.get("method", "?"))]
    if info.get("steps") is not None:
        parts.append(f"{info['steps']} steps")
    parts += [f"{k}={v}" for k, v in opts.items() if k in ("lam", "zeta")]
    cal = info.get("calibration")
    if isinstance(cal, dict):
        why = cal.get("criterion") or cal.get("rule") or cal.get("chosen")
        if why is not None:
            parts.append(f"[{why}]")
    return " ".join(parts)


def render_report(results: dict[str, Any], per_row: bool = False) -> str:
    """The Markdown report of a results document (see the module docstring)."""
    meta = results.get("meta", {})
    rows = _cells(results)
    methods = methods_in(results)
    lines = [f"## Generalisation benchmark, {meta.get('split', '?')} half", ""]
    if meta:
        lines += [f"Generated by `python tests/benchmarks/generalisation.py {meta.get('command', '')}`".rstrip()
                  + f" on {meta.get('date', '?')} ({meta.get('machine', '?')}, device {meta.get('device', '?')}, "
                  f"{meta.get('threads', '?')} torch threads; torch {meta.get('torch', '?')}, "
                  f"deepinv {meta.get('deepinv', '?')}, pnpdiff {meta.get('pnpdiff', '?')}).", ""]
        if meta.get("size_override"):
            lines += [f"Every row run at {meta['size_override']} px (--size), not its own size.", ""]
    lines += ["Prior `natural` (FFDNet) for every learned method. PSNR (dB) on results clamped to [0, 1]; "
              "a mean is over the rows where the method ran (their number in brackets when fewer); "
              "each difference over the rows where both ran. `oracle`: best of default and "
              "ORACLE_GRID, chosen with the ground truth.", ""]
    head = (["group", "rows", *methods, "default − dpir (mean)", "default − dpir (min)", "oracle − default",
             "oracle − calibrate", "calls default", "calls calibrate"])

    def table_line(name: str, agg: dict[str, Any]) -> str:
        cells = [name, str(agg["rows"])]
        for m in methods:
            v = agg["psnr"][m]
            n = agg["n"][m]
            cells.append("" if v is None else f"{v:.2f}" + ("" if n == agg["rows"] else f" ({n})"))
        mean_d, min_d = agg["default_minus_dpir"]
        cells += [_f(mean_d, "{:+.2f}"), _f(min_d, "{:+.2f}"), _f(agg["oracle_minus_default"], "{:+.2f}"),
                  _f(agg["oracle_minus_calibrate"], "{:+.2f}"), _f(agg["calls"].get(DEFAULT), "{:.1f}"),
                  _f(agg["calls"].get(CALIBRATE), "{:.1f}")]
        return "| " + " | ".join(cells) + " |"

    for title, key, order in (("By family", "family", FAMILIES), ("By kind", "kind", tuple(KINDS))):
        lines += [f"### {title}", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        groups: dict[str, list[dict[str, Cell]]] = {}
        for r, c in rows:
            groups.setdefault(r[key], []).append(c)
        for g in [*(o for o in order if o in groups), *sorted(set(groups) - set(order))]:
            lines.append(table_line(g, aggregate(groups[g], methods)))
        lines.append(table_line("**all**", aggregate([c for _, c in rows], methods)))
        lines.append("")
    failures = [(r["id"], m, c.note) for r, cs in rows for m, c in cs.items() if not c.ok]
    if per_row:
        lines += ["### Rows", "", "| row | degradation | size | sigma_y | " + " | ".join(methods)
                  + " | oracle's pick | default ran | calibrate ran |", "|---" * (len(methods) + 7) + "|"]
        for r, cs in rows:
            vals = [("" if m not in cs else f"{cs[m].psnr:.2f}" if cs[m].ok else _cell_text(cs[m].note, 30))
                    for m in methods]
            pick = cs[ORACLE].note if ORACLE in cs and cs[ORACLE].ok else ""
            ran = [_cell_text(choice_text(cs[m].info), 80) if m in cs else "" for m in (DEFAULT, CALIBRATE)]
            desc = Row(**r).describe()
            lines.append(f"| {r['id']} | {_cell_text(desc)} | {r['size']} | {r['sigma_y']} | "
                         + " | ".join(vals) + f" | {pick} | {ran[0]} | {ran[1]} |")
        lines.append("")
    if failures:
        lines += ["### Not run (n/a) and failures", ""]
        lines += [f"- `{i}` {m}: {_cell_text(n, 200)}" for i, m, n in failures]
        lines.append("")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------
# the run
# -------------------------------------------------------------------------------------------------
def _shown_args(argv: Iterable[str] | None) -> str:
    return " ".join(list(argv if argv is not None else sys.argv[1:]))


def _versions() -> dict[str, str]:
    try:
        import deepinv

        dinv = str(deepinv.__version__)
    except ImportError:
        dinv = "not installed"
    from pnpdiff._version import __version__

    return {"torch": torch.__version__, "deepinv": dinv, "pnpdiff": __version__}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=SPLITS, default="test", help="which half (default test)")
    ap.add_argument("--families", nargs="+", help=f"families or kinds: {', '.join([*FAMILIES, *KINDS])}")
    ap.add_argument("--rows", nargs="+", help="row ids (see --list)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N selected rows")
    ap.add_argument("--max-size", type=int, default=None, help="drop rows larger than this (e.g. 256)")
    ap.add_argument("--size", type=int, default=None,
                    help="run every row at this size instead of its own (smoke tests; noted in the report)")
    ap.add_argument("--methods", nargs="+",
                    help=f"default: {' '.join(BASE_METHODS)}; also {' '.join(SAMPLING_METHODS)}")
    ap.add_argument("--json", default=None, help="results file, rewritten after every run")
    ap.add_argument("--resume", action="store_true", help="skip the (row, method) pairs already in --json")
    ap.add_argument("--out", default=None, help="Markdown report (default: printed only)")
    ap.add_argument("--per-row", action="store_true", help="add a table of every row to the report")
    ap.add_argument("--from-json", default=None, help="render the report of this results file (no run)")
    ap.add_argument("--list", action="store_true", help="print the selected rows and exit")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = ap.parse_args(argv)

    if args.from_json:
        text = render_report(json.loads(Path(args.from_json).read_text()), per_row=args.per_row)
        if args.out:
            Path(args.out).write_text(text)
        print(text)
        return 0

    rows = select_rows(args.split, args.families, args.rows, args.max_size, args.limit)
    if args.list:
        for r in rows:
            print(f"{r.id:40s} {r.size:4d} px  sigma_y {r.sigma_y:<6}  {r.describe()}")
        print(f"{len(rows)} rows ({args.split} half)")
        return 0
    methods = list(args.methods or BASE_METHODS)
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; known: {', '.join(ALL_METHODS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    meta = {"split": args.split, "command": _shown_args(argv), "date": _dt.date.today().isoformat(),
            "machine": f"{platform.machine()} {platform.processor() or platform.system()}".strip(),
            "device": str(device), "threads": torch.get_num_threads(), "size_override": args.size, **_versions()}
    json_path = Path(args.json) if args.json else None
    results = new_results(meta)
    if json_path is not None and json_path.exists() and (args.resume or args.methods):
        results = json.loads(json_path.read_text())
        if results.get("meta", {}).get("split") not in (None, args.split):
            raise SystemExit(f"{json_path} holds the {results['meta']['split']} half, not {args.split}")
        results["meta"] = {**results.get("meta", {}), **{k: v for k, v in meta.items() if k != "command"}}
        results["meta"]["command"] = (results["meta"].get("command", "") + " ; " + meta["command"]).strip(" ;")
    out_path = Path(args.out) if args.out else None
    for p in (json_path, out_path):
        if p is not None:
            p.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        if json_path is not None:
            write_json(results, json_path)

    prior = pnpdiff.load_prior("natural").to(device)
    counter = CallCounter(prior)
    from pnpdiff.io import load_source_image

    errors = 0
    for n, row in enumerate(rows, 1):
        have = {m: Cell(**c) for m, c in results["rows"].get(row.id, {}).get("cells", {}).items()}
        todo = [m for m in methods if not (args.resume and m in have and not have[m].failed)]
        if not todo:
            continue
        size = args.size or row.size
        if args.size and "factor" in row.params:
            size -= size % int(row.params["factor"])
        t_row = time.perf_counter()
        print(f"[{n}/{len(rows)}] {row.id}  {size} px  sigma_y {row.sigma_y}  {row.describe()}", flush=True)
        try:
            x = load_source_image(f"skimage:{row.photo}", size)[0]
            op = make_operator(row, tuple(x.shape))
            y = measurement(row, x, op)
            pb = Problem(row, x, y.to(device), op.to(device), device)
        except Exception as err:  # noqa: BLE001
            traceback.print_exc()
            for m in todo:
                put_cell(results, row, m, Cell(note=f"error: building the row: {type(err).__name__}: {err}"))
            errors += 1
            save()
            continue
        for m in todo:
            cell = run_method(m, pb, prior, counter, have)
            have[m] = cell
            put_cell(results, row, m, cell)
            save()
            shown = f"PSNR {cell.psnr:.2f} dB, {cell.calls} calls, {cell.seconds:.1f} s" if cell.ok else cell.note
            print(f"    {m:16s} {_cell_text(shown, 110)}", flush=True)
            errors += cell.failed
        print(f"    row: {time.perf_counter() - t_row:.1f} s", flush=True)
    # the report covers the selected rows (a merged file may hold more)
    wanted = {r.id for r in rows}
    shown = {"meta": results["meta"], "rows": {k: v for k, v in results["rows"].items() if k in wanted}}
    text = render_report(shown, per_row=args.per_row)
    if out_path is not None:
        tmp = out_path.with_name(out_path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out_path)
    print()
    print(text)
    if errors:
        print(f"{errors} run(s) failed (see the report and the tracebacks above)", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
