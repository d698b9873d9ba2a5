"""Conversions between the kinds of images users hold and ``(B, C, H, W)`` tensors in [0, 1]."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pnpdiff.errors import PnPError, ShapeError, ValueRangeError

__all__ = ["to_tensor", "load_image", "load_pil", "save_image", "to_pil", "to_uint8", "check_range"]


def check_range(x: Tensor, name: str = "image") -> None:
    """Refuse NaN/inf and values far outside [0, 1] (noise may push a little past the ends)."""
    if not bool(torch.isfinite(x).all()):
        raise ValueRangeError(f"{name} contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if hi > 1.5 or lo < -0.5:
        raise ValueRangeError(
            f"{name} values span [{lo:.3g}, {hi:.3g}], but pnpdiff expects images in [0, 1]; "
            "divide 8-bit data by 255"
        )


def load_image(path: str | os.PathLike) -> Tensor:
    """Read an image file into a ``(1, C, H, W)`` float32 tensor in [0, 1] (C = 1 or 3)."""
    p = Path(path)
    if not p.is_file():
        raise PnPError(f"image file not found: {p}")
    with Image.open(p) as im:
        return load_pil(im)


def to_uint8(x: Tensor) -> np.ndarray:
    """``(1, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` tensor in [0, 1] -> ``(H, W)`` / ``(H, W, 3)`` uint8 array."""
    x = x.detach().to("cpu", torch.float32)
    while x.ndim > 3:
        x = x[0]
    if x.ndim == 3:
        x = x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()


def to_pil(x: Tensor) -> Image.Image:
    """A tensor in [0, 1] (see :func:`to_uint8`) as an 8-bit grey or RGB PIL image."""
    return Image.fromarray(to_uint8(x))


def save_image(x: Tensor, path: str | os.PathLike) -> None:
    """Write a ``(1, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` tensor in [0, 1] to an 8-bit image."""
    to_pil(x).save(path)


def to_tensor(img: Any) -> tuple[Tensor, Callable[[Tensor], Any]]:
    """Convert ``img`` to a ``(B, C, H, W)`` float tensor and return a function converting back.

    Accepted: tensors ``(B, C, H, W)``, ``(C, H, W)``, ``(H, W)``; NumPy arrays ``(H, W)`` or
    ``(H, W, C)`` (uint8 in 0..255 or float in [0, 1]); PIL images; paths to image files.
    The returned function maps a ``(B, C, H, W)`` result back to the input's kind: the same
    tensor rank (and dtype), a NumPy array of the same dtype, a PIL image of the same mode;
    for a path, a PIL image.
    """
    if torch.is_tensor(img):
        if not img.is_floating_point():
            raise ValueRangeError(f"tensor images must be floating point in [0, 1], got {img.dtype}")
        nd = img.ndim
        if nd == 4:
            x = img
        elif nd == 3:
            x = img[None]
        elif nd == 2:
            x = img[None, None]
        else:
            raise ShapeError(f"expected a (B, C, H, W), (C, H, W) or (H, W) tensor, got {tuple(img.shape)}")
        dtype = img.dtype

        def back_tensor(out: Tensor) -> Tensor:
            out = out.to(dtype)
            return out if nd == 4 else (out[0] if nd == 3 else out[0, 0])

        return x, back_tensor

    if isinstance(img, np.ndarray):
        arr = img
        if arr.ndim == 3 and arr.shape[-1] == 4:
            raise ShapeError("RGBA arrays are not supported: drop the alpha channel (arr[..., :3])")
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (1, 3)):
            raise ShapeError(f"expected an (H, W) or (H, W, C) array with C = 1 or 3, got {arr.shape}")
        if arr.dtype == np.uint8:
            t = torch.from_numpy(arr.astype(np.float32) / 255.0)
        elif np.issubdtype(arr.dtype, np.floating):
            t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        else:
            raise ValueRangeError(f"arrays must be uint8 or float in [0, 1], got {arr.dtype}")
        x = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
        shape, dtype_np = arr.shape, arr.dtype

        def back_array(out: Tensor) -> np.ndarray:
            if dtype_np == np.uint8:
                arr = to_uint8(out[0])
                return arr if len(shape) == 2 else arr.reshape(*arr.shape[:2], -1)
            o = out[0].detach().to("cpu", torch.float32).clamp(0, 1)
            o = o[0] if len(shape) == 2 else o.permute(1, 2, 0)
            return o.numpy().astype(dtype_np)

        return x, back_array

    if isinstance(img, Image.Image):
        mode = img.mode
        x = load_pil(img)

        def back_pil(out: Tensor) -> Image.Image:
            pil = to_pil(out[0])
            return pil.convert(mode) if mode in ("L", "RGB") else pil

        return x, back_pil

    if isinstance(img, (str, os.PathLike)):
        with Image.open(Path(img)) as im:
            im.load()
            return to_tensor(im)
    raise ShapeError(
        f"cannot read an image from {type(img).__name__}; pass a tensor, a NumPy array, a PIL "
        "image or a path"
    )


def normalise_mode(im: Image.Image) -> Image.Image:
    """Grey modes (L, I, I;16, F, 1, LA) -> ``"L"``; every other mode -> ``"RGB"``."""
    return im.convert("L") if im.mode in ("L", "I", "I;16", "F", "1", "LA") else im.convert("RGB")


def load_pil(im: Image.Image) -> Tensor:
    """``(1, C, H, W)`` float32 tensor of a PIL image (grey modes -> 1 channel, others -> RGB)."""
    arr = np.asarray(normalise_mode(im), dtype=np.float32) / 255.0
    t = torch.from_numpy(arr.copy())
    return t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
