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

from pnpdiff.errors import OperatorError

from . import _checks

__all__ = ["random_mask", "box_mask", "freeform_mask"]


#: peak bytes per pixel (of ``B * C * H * W``) of drawing a mask, measured on the CPU and rounded
#: up: random_mask 32 (a float32 draw, two int64 argsorts), box_mask a few; freeform_mask holds the
#: float64 distances of every pixel to every segment of a stroke (690 B/px at max_vertices=12)
RANDOM_BYTES_PER_PIXEL = 40
BOX_BYTES_PER_PIXEL = 16
FREEFORM_BYTES_PER_PIXEL_PER_VERTEX = 64


def _shape(shape: Sequence[int]) -> tuple[int, ...]:
    given = shape
    if torch.is_tensor(shape):
        shape = tuple(shape.shape)
    shp = _checks.shape_tuple(
        shape, "shape", lengths=(2, 3, 4), what="(H, W), (C, H, W) or (B, C, H, W) of positive integers"
    )
    for side in shp[-2:]:
        _checks.kernel_side(side, "shape", given, "its (H, W)", "give the image's own shape", what="a mask")
    return shp


def _check_memory(shp: tuple[int, ...], per_pixel: float) -> None:
    """The memory guard of :func:`pnpdiff.solve`, before a mask of ``shp`` is drawn."""
    _checks.check_build_memory(per_pixel * math.prod(shp), "shape", shp, f"a mask of {math.prod(shp):,} values",
                               "give a smaller shape (the image's own)")


def _gen(generator: torch.Generator | None, seed: int | None) -> torch.Generator:
    generator = _checks.generator(generator)
    seed = _checks.seed(seed)
    if generator is not None:
        return generator
    g = torch.Generator()
    g.manual_seed(0 if seed is None else seed)
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

    Returns
    -------
    Tensor
        Float mask of exactly ``shape`` on ``device``: 1 = observed, 0 = missing.
    """
    shp = _shape(shape)
    p_missing = _checks.real(p_missing, "p_missing", minimum=0.0, maximum=1.0)
    per_channel = _checks.boolean(per_channel, "per_channel")
    device = _checks.device(device)
    b, c, h, w = _as_4d(shp)
    draw_c = c if per_channel else 1
    _check_memory(shp, RANDOM_BYTES_PER_PIXEL * draw_c / c + 8)
    g = _gen(generator, seed)
    n_missing = round(p_missing * h * w)
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

    Returns
    -------
    Tensor
        Float mask of exactly ``shape`` on ``device``: 1 = observed, 0 = missing.
    """
    shp = _shape(shape)
    b, c, h, w = _as_4d(shp)
    _check_memory(shp, BOX_BYTES_PER_PIXEL)
    device = _checks.device(device)
    margin = _checks.integer(margin, "margin", minimum=0)
    _checks.generator(generator)
    _checks.seed(seed)
    if box_size is None:
        bh, bw = h // 2, w // 2
        if bh < 1 or bw < 1:
            raise OperatorError(
                f"box_size: the default box (half the image side) is empty for an image of size {(h, w)}; "
                "pass box_size=(height, width)"
            )
    else:
        bh, bw = _checks.int_pair(box_size, "box_size")
    if not (bh <= h and bw <= w):
        raise OperatorError(
            f"box_size must fit the image {(h, w)}, got {_checks.show(box_size)} (box {(bh, bw)})"
        )
    if isinstance(position, str):
        if position == "center":
            tops = torch.full((b,), (h - bh) // 2)
            lefts = torch.full((b,), (w - bw) // 2)
        elif position == "random":
            if h - bh - 2 * margin < 0 or w - bw - 2 * margin < 0:
                raise OperatorError(
                    f"margin must leave room for the box, got margin={margin}: a box {(bh, bw)} at least {margin} "
                    f"pixels from the border does not fit the image {(h, w)}"
                )
            g = _gen(generator, seed)
            tops = margin + torch.randint(0, h - bh - 2 * margin + 1, (b,), generator=g)
            lefts = margin + torch.randint(0, w - bw - 2 * margin + 1, (b,), generator=g)
        else:
            raise OperatorError(f"position must be 'center', 'random' or (top, left), got {position!r}")
    else:
        top, left = _checks.shape_tuple(
            position, "position", lengths=(2,), minimum=0, error=_checks.OperatorRangeError,
            what="'center', 'random' or (top, left) of non-negative integers",
        )
        if not (0 <= top <= h - bh and 0 <= left <= w - bw):
            raise OperatorError(
                f"position must place the box inside the image, got {_checks.show(position)}: a box of size "
                f"{(bh, bw)} at (top, left) = {(top, left)} does not fit the image {(h, w)}"
            )
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

    Returns
    -------
    Tensor
        Float mask of exactly ``shape`` on ``device``: 1 = observed, 0 = missing.

    References
    ----------
    J. Yu, Z. Lin, J. Yang, X. Shen, X. Lu and T. Huang, "Free-Form Image Inpainting with Gated
    Convolution", ICCV 2019. https://arxiv.org/abs/1806.03589
    """
    shp = _shape(shape)
    b, c, h, w = _as_4d(shp)
    max_strokes = _checks.integer(max_strokes, "max_strokes", minimum=1)
    max_vertices = _checks.integer(max_vertices, "max_vertices", minimum=2)
    if max_width is not None:
        max_width = _checks.real(max_width, "max_width", positive=True)
    device = _checks.device(device)
    _check_memory((h, w), FREEFORM_BYTES_PER_PIXEL_PER_VERTEX * max_vertices + 16 * b * c)
    g = _gen(generator, seed)
    diag = math.hypot(h, w)
    max_w = diag / 10 if max_width is None else max_width
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
