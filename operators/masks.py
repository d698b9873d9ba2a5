"""Seeded mask generators for :class:`~pnpdiff.operators.Inpaint` (1 = observed, 0 = missing).

Every generator takes the ``shape`` of the mask to build -- ``(H, W)``, ``(C, H, W)`` or
``(B, C, H, W)`` -- and either a ``torch.Generator`` or an integer ``seed``; the same seed gives
the same mask. Masks are drawn on the CPU (so they are identical on every device) and returned
as float tensors of exactly ``shape`` on ``device``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from pnpdiff.errors import OperatorError, ShapeError

__all__ = ["random_mask", "box_mask", "freeform_mask"]


def _shape(shape: Sequence[int]) -> tuple[int, ...]:
    if torch.is_tensor(shape):
        shape = tuple(shape.shape)
    shp = tuple(int(s) for s in shape)
    if len(shp) not in (2, 3, 4) or any(s < 1 for s in shp):
        raise ShapeError(f"mask shape must be (H, W), (C, H, W) or (B, C, H, W) of positive sizes, got {shape!r}")
    return shp


def _gen(generator: torch.Generator | None, seed: int | None) -> torch.Generator:
    if generator is not None:
        return generator
    g = torch.Generator()
    g.manual_seed(0 if seed is None else int(seed))
    return g


def _as_4d(shp: tuple[int, ...]) -> tuple[int, int, int, int]:
    return (1,) * (4 - len(shp)) + shp  # type: ignore[return-value]


def random_mask(
    shape: Sequence[int],
    p_missing: float,
    per_channel: bool = False,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random missing pixels: exactly ``round(p_missing * H * W)`` missing per image (and channel).

    Parameters
    ----------
    shape : sequence of int
        ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
    p_missing : float
        Fraction of missing pixels, in ``[0, 1]`` (e.g. 0.7 or 0.9 as in DDRM/DiffPIR).
    per_channel : bool
        Draw each channel independently (default: the same pixels are missing in every channel).
    generator, seed
        Source of randomness (see the module docstring).
    device
        Of the result.
    """
    shp = _shape(shape)
    if not 0.0 <= float(p_missing) <= 1.0:
        raise OperatorError(f"p_missing must be in [0, 1], got {p_missing}")
    b, c, h, w = _as_4d(shp)
    g = _gen(generator, seed)
    n_missing = round(float(p_missing) * h * w)
    draw_c = c if per_channel else 1
    ranks = torch.rand(b, draw_c, h * w, generator=g).argsort(-1).argsort(-1)
    mask = (ranks >= n_missing).to(torch.get_default_dtype()).view(b, draw_c, h, w)
    return mask.expand(b, c, h, w).reshape(shp).clone().to(device)


def box_mask(
    shape: Sequence[int],
    box_size: int | Sequence[int] | None = None,
    position: str | Sequence[int] = "center",
    margin: int = 0,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """A missing rectangle: DPS / DiffPIR box inpainting (128x128 on 256x256 images).

    Parameters
    ----------
    shape : sequence of int
        ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
    box_size : int or (int, int), optional
        Box height and width; default half the image side (128 at 256x256).
    position : "center", "random" or (top, left)
        ``"center"``: centred box; ``"random"``: uniform position (each batch element its own),
        at least ``margin`` pixels from the border (DPS draws the box at a random position).
    margin : int
        Minimal distance of a random box to the border.
    generator, seed, device
        See the module docstring.
    """
    shp = _shape(shape)
    b, c, h, w = _as_4d(shp)
    if box_size is None:
        bh, bw = h // 2, w // 2
    elif isinstance(box_size, int):
        bh = bw = box_size
    else:
        bh, bw = (int(s) for s in box_size)
    if not (0 < bh <= h and 0 < bw <= w):
        raise OperatorError(f"box_size {(bh, bw)} must be positive and fit the image {(h, w)}")
    if isinstance(position, str):
        if position == "center":
            tops = torch.full((b,), (h - bh) // 2)
            lefts = torch.full((b,), (w - bw) // 2)
        elif position == "random":
            if h - bh - 2 * margin < 0 or w - bw - 2 * margin < 0:
                raise OperatorError(f"box {(bh, bw)} with margin {margin} does not fit the image {(h, w)}")
            g = _gen(generator, seed)
            tops = margin + torch.randint(0, h - bh - 2 * margin + 1, (b,), generator=g)
            lefts = margin + torch.randint(0, w - bw - 2 * margin + 1, (b,), generator=g)
        else:
            raise OperatorError(f"position must be 'center', 'random' or (top, left), got {position!r}")
    else:
        top, left = (int(p) for p in position)
        if not (0 <= top <= h - bh and 0 <= left <= w - bw):
            raise OperatorError(f"box at {(top, left)} of size {(bh, bw)} does not fit the image {(h, w)}")
        tops = torch.full((b,), top)
        lefts = torch.full((b,), left)
    rows = torch.arange(h)
    cols = torch.arange(w)
    in_r = (rows[None, :] >= tops[:, None]) & (rows[None, :] < tops[:, None] + bh)
    in_c = (cols[None, :] >= lefts[:, None]) & (cols[None, :] < lefts[:, None] + bw)
    missing = in_r[:, :, None] & in_c[:, None, :]  # (b, h, w)
    mask = (~missing).to(torch.get_default_dtype())[:, None]
    return mask.expand(b, c, h, w).reshape(shp).clone().to(device)


def _segment_distance(px: Tensor, py: Tensor, a: Tensor, bpt: Tensor) -> Tensor:
    """Distance of grid points ``(px, py)`` (``(H, W)``) to segments ``a -> bpt`` (``(S, 2)``), ``(S, H, W)``."""
    ax, ay = a[:, 0, None, None], a[:, 1, None, None]
    dx, dy = (bpt[:, 0] - a[:, 0])[:, None, None], (bpt[:, 1] - a[:, 1])[:, None, None]
    len2 = (dx * dx + dy * dy).clamp_min(1e-12)
    t = (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0, 1)
    return torch.hypot(px - ax - t * dx, py - ay - t * dy)


def freeform_mask(
    shape: Sequence[int],
    seed: int | None = None,
    generator: torch.Generator | None = None,
    max_strokes: int = 5,
    max_vertices: int = 12,
    max_width: float | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Free-form brush strokes, in the style of the masks of Yu et al., "Free-Form Image
    Inpainting with Gated Convolution", ICCV 2019 (DeepFill v2), also used by later diffusion
    inpainting papers.

    Each image gets 1..``max_strokes`` strokes; a stroke is a random polyline of 4..``max_vertices``
    vertices whose headings alternate around a random direction and whose segment lengths are
    normal around an eighth of the image diagonal, drawn with a round brush of random width
    (``max_width / 3`` .. ``max_width``, default ``max_width`` = ``diag / 10``). Strokes are
    rasterised exactly (distance of each pixel centre to each segment), vectorised over pixels.
    Independent implementation.

    Parameters
    ----------
    shape : sequence of int
        ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)`` (every batch element has its own strokes,
        shared by its channels).
    seed, generator, device
        See the module docstring.
    max_strokes, max_vertices : int
        Upper bounds of the number of strokes per image and of vertices per stroke.
    max_width : float, optional
        Largest brush diameter in pixels.
    """
    shp = _shape(shape)
    b, c, h, w = _as_4d(shp)
    if max_strokes < 1 or max_vertices < 2:
        raise OperatorError("max_strokes must be >= 1 and max_vertices >= 2")
    g = _gen(generator, seed)
    diag = math.hypot(h, w)
    max_w = diag / 10 if max_width is None else float(max_width)
    avg_len = diag / 8
    py, px = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    masks = []
    for _ in range(b):
        n_strokes = int(torch.randint(1, max_strokes + 1, (1,), generator=g))
        missing = torch.zeros(h, w, dtype=torch.bool)
        for _ in range(n_strokes):
            nv = int(torch.randint(min(4, max_vertices), max_vertices + 1, (1,), generator=g))
            start = torch.rand(2, generator=g, dtype=torch.float64) * torch.tensor([w - 1, h - 1], dtype=torch.float64)
            base = float(torch.rand(1, generator=g, dtype=torch.float64)) * 2 * math.pi
            spread = 2 * math.pi / 15
            turns = base + (torch.rand(nv - 1, generator=g, dtype=torch.float64) * 2 - 1) * spread
            turns[1::2] = turns[1::2] + math.pi  # zig-zag: alternate directions
            lengths = avg_len + avg_len / 2 * torch.randn(nv - 1, generator=g, dtype=torch.float64)
            lengths = lengths.clamp(0, 2 * avg_len)
            steps = torch.stack([lengths * torch.cos(turns), lengths * torch.sin(turns)], dim=1)
            pts = torch.cat([start[None], start[None] + torch.cumsum(steps, 0)])
            pts[:, 0] = pts[:, 0].clamp(0, w - 1)
            pts[:, 1] = pts[:, 1].clamp(0, h - 1)
            width = max_w / 3 + float(torch.rand(1, generator=g, dtype=torch.float64)) * (max_w * 2 / 3)
            dist = _segment_distance(px, py, pts[:-1], pts[1:])
            missing |= (dist <= width / 2).any(0)
        masks.append(~missing)
    mask = torch.stack(masks).to(torch.get_default_dtype())[:, None]
    return mask.expand(b, c, h, w).reshape(shp).clone().to(device)
