"""Conversions between the kinds of images users hold and ``(B, C, H, W)`` tensors in [0, 1].

Bit depth
---------
Images are read at the precision they are stored with. 8-bit data (and 1-bit, palette, ...) is
divided by 255; 16-bit data (16-bit PNG and TIFF, grey or colour, Pillow modes ``I;16`` and ``I``,
``uint16`` arrays) by 65535; a TIFF of 2..15-bit unsigned samples by ``2**bits - 1`` (a 12-bit
TIFF by 4095); float data (float TIFF, Pillow mode ``F``, float arrays) is taken as it is,
already in [0, 1]. A TIFF of signed (int8, int16, int32) or 32-bit integer samples is refused:
no scale to [0, 1] is standard for them. The *bit depth* of an input is 8 for 8-bit-or-less data and 16 for
16-bit and float data: it is the depth an output should be written with to keep the input's
precision, ``save_image(x, path, bits=...)``. Learn it with :func:`image_info` (reads only the
header) or ``load_image(path, return_bits=True)``; :func:`load_source_image` returns it too.

Alpha
-----
One rule for files, PIL images and NumPy arrays: the colour channels are restored and the alpha
channel is dropped (LA -> L, RGBA -> RGB; arrays ``(H, W, 2)`` and ``(H, W, 4)`` alike; a PNG
transparency colour key counts as an alpha channel). A fully opaque alpha channel is dropped
silently; one with any non-opaque pixel is dropped with a :class:`~pnpdiff.errors.PnPWarning`
saying so, and transparent pixels are restored from the colour stored under them (composite
the image onto a background first if that is not what you want). Outputs never have alpha.

Files as a viewer shows them
----------------------------
A file is read as image viewers show it: its EXIF orientation (or the TIFF Orientation tag, or
XMP ``tiff:Orientation``) is applied as :func:`PIL.ImageOps.exif_transpose` applies it, so a
phone photo stored 4000 x 3000 with orientation 6 loads 3000 wide and 4000 high (and
:func:`image_info` reports that size). PIL images and arrays are taken as their pixels are
(``ImageOps.exif_transpose(im)`` first if you want the rotation). A file must hold one image:
a multi-page TIFF or an animated GIF, PNG or WebP is refused with its page count (a camera's MPO
JPEG counts as its main image). Float pixels must be finite and in [0, 1] (values within
:data:`FLOAT_TOLERANCE` of it, float rounding, are clipped); other files are refused with the
range found.

Errors
------
A missing path or a folder raises :class:`~pnpdiff.errors.InputFileError` (a
``FileNotFoundError``); a file that exists but cannot be decoded (empty, truncated, not an
image, no permission, several pages or frames) raises :class:`~pnpdiff.errors.ImageReadError`
(an ``OSError``); an empty image raises :class:`~pnpdiff.errors.ShapeError`; a wrong dtype,
NaN or infinite pixels, float pixels outside [0, 1] or an image too large raises
:class:`~pnpdiff.errors.ValueRangeError`. Every message names the file.
"""

from __future__ import annotations

import numbers
import os
import re
import struct
import sys
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pnpdiff.errors import (
    ImageReadError,
    InputFileError,
    PnPError,
    PnPWarning,
    RecipeError,
    ShapeError,
    ValueRangeError,
)

__all__ = [
    "FLOAT_TOLERANCE",
    "ImageInfo",
    "MAX_PIXELS",
    "check_range",
    "image_info",
    "load_image",
    "load_pil",
    "load_source_image",
    "resolve_image_path",
    "save_image",
    "source_image_shape",
    "to_pil",
    "to_tensor",
    "to_uint8",
    "to_uint16",
]

#: Largest image (height x width) that :func:`load_source_image` reads or produces (~268 Mpx).
MAX_PIXELS = 2**28

_FORMATS = "PNG, TIFF (8/16-bit, float), JPEG, BMP, WebP, GIF and the other formats Pillow opens"
_SKIMAGE_EXAMPLES = "astronaut, camera, chelsea, coffee, rocket"
# skimage.data callables that are not test photos (or would download)
_SKIMAGE_NOT_PHOTOS = {"download_all", "file_hash", "lbp_frontal_face_cascade_filename", "stereo_motorcycle"}
# Pillow rawmodes of 16-bit colour PNGs (Pillow keeps only the high byte) -> rawmodes that decode
# the same filtered stream to the high and the low bytes
_PNG16_PASSES = {
    "RGB;16B": ("RGB;16B", "RGB;16L"),
    "RGBA;16B": ("RGBA;16B", "RGBA;16L"),
    "LA;16B": ("RGBA",),  # 4 bytes per pixel read as R,G,B,A = grey hi, grey lo, alpha hi, alpha lo
}
_MODES_16 = ("I;16", "I;16L", "I;16B", "I;16N")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


# --------------------------------------------------------------------------------------------
# small helpers


def check_range(x: Tensor, name: str = "image", data_range: tuple[float, float] | None = (0.0, 1.0),
                sigma_y: float | None = None) -> None:
    """Refuse NaN/inf always, and values far outside ``data_range`` (a prior's declared range;
    ``None``: no range, nothing else is checked). Noise may push a measurement past the ends: half
    the range is allowed on either side, or six noise standard deviations when ``sigma_y`` is
    given and larger (0..255 data are caught either way).

    Raises
    ------
    ValueRangeError
        If ``x`` has NaN or infinite values, or values outside the range and its margin.
    """
    if not bool(torch.isfinite(x).all()):
        raise ValueRangeError(f"{name} contains NaN or infinite values")
    if data_range is None:
        return
    lo, hi = float(data_range[0]), float(data_range[1])
    margin = max(0.5 * (hi - lo), 6.0 * float(sigma_y or 0.0))
    x_lo, x_hi = float(x.min()), float(x.max())
    if x_hi > hi + margin or x_lo < lo - margin:
        hint = ""
        if (lo, hi) == (0.0, 1.0):
            hint = "; divide 8-bit data by 255 and 16-bit data by 65535"
            if x_lo >= 0 and x_hi < 32:  # scaled photon counts at a few photons stray past 1 + 1/2
                hint += ("; for photon counts scaled to white = 1 (Poisson noise), give the noise model, "
                         "noise={'model': 'poisson', 'peak': <photons at white>}")
        raise ValueRangeError(
            f"{name} values span [{x_lo:.3g}, {x_hi:.3g}], but the prior expects data in [{lo:g}, {hi:g}]{hint}"
        )


def _hwc(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` / ``(C, H, W)`` / ``(H, W)`` -> float32 CPU ``(H, W)`` or ``(H, W, C)`` (first image)."""
    x = x.detach().to("cpu", torch.float32)
    while x.ndim > 3:
        x = x[0]
    if x.ndim == 3:
        x = x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)
    return x


def to_uint8(x: Tensor) -> np.ndarray:
    """``(1, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` tensor in [0, 1] -> ``(H, W)`` / ``(H, W, 3)`` uint8 array."""
    return (_hwc(x).clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()


def to_uint16(x: Tensor) -> np.ndarray:
    """Like :func:`to_uint8`, to a uint16 array in 0..65535."""
    return (_hwc(x).clamp(0, 1).double() * 65535.0).round().numpy().astype(np.uint16)


def to_pil(x: Tensor) -> Image.Image:
    """A tensor in [0, 1] (see :func:`to_uint8`) as an 8-bit grey or RGB PIL image."""
    return Image.fromarray(to_uint8(x))


def _to_float(arr: np.ndarray) -> np.ndarray:
    """uint8 / 255, uint16 / 65535, bool as 0/1, float as it is -> float32 (same shape)."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    return np.ascontiguousarray(arr, dtype=np.float32)


def _as_tensor(arr: np.ndarray) -> Tensor:
    """``(H, W, C)`` float32 array -> ``(1, C, H, W)`` tensor."""
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def _opaque_value(dtype: np.dtype) -> float:
    if dtype == np.uint8:
        return 255
    if dtype == np.uint16:
        return 65535
    return 1


def _drop_alpha(arr: np.ndarray, label: str) -> np.ndarray:
    """``(H, W, 2|4)`` -> ``(H, W, 1|3)`` by the module's alpha rule; other arrays unchanged."""
    if arr.shape[-1] not in (2, 4):
        return arr
    alpha = arr[..., -1]
    n_open = int(np.count_nonzero(alpha < _opaque_value(arr.dtype)))
    if n_open:
        _warn(
            f"{label} has a transparent alpha channel ({n_open} of {alpha.size} pixels not fully opaque): "
            "pnpdiff restores the colour channels only and drops the alpha, so transparent pixels are "
            "restored from the colour stored under them; composite the image onto a background first "
            "if that is not what you want"
        )
    return arr[..., :-1]


def _warn(message: str) -> None:
    """``warnings.warn(message, PnPWarning)`` attributed to the first caller outside pnpdiff."""
    here = os.path.dirname(os.path.abspath(__file__))
    level, frame = 1, sys._getframe(0)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here + os.sep):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, PnPWarning, stacklevel=level)


def _bits_of(dtype: np.dtype) -> int:
    return 8 if dtype in (np.uint8, np.bool_) else 16


# --------------------------------------------------------------------------------------------
# PIL images


def _pil_array(im: Image.Image) -> np.ndarray:
    """A PIL image as an ``(H, W, C)`` array at its stored precision, C = 1..4 (2, 4: with alpha).

    uint8 for 8-bit-or-less modes, uint16 for ``I;16*`` and ``I`` (clipped to 0..65535), float32
    for ``F``. A transparency colour key becomes an alpha channel.
    """
    mode = im.mode
    if mode in _MODES_16:
        arr = np.asarray(im).astype(np.uint16)
    elif mode == "I":
        arr = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    elif mode == "F":
        arr = np.asarray(im, dtype=np.float32)
    elif mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(im)
    elif mode == "1":
        arr = np.asarray(im.convert("L"))
    elif mode == "La":
        arr = np.asarray(im.convert("LA"))
    elif mode == "P":
        arr = np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
    elif "A" in mode or "a" in mode:  # PA, RGBa, ...
        arr = np.asarray(im.convert("RGBA"))
    else:  # CMYK, YCbCr, LAB, HSV, RGBX, ...
        arr = np.asarray(im.convert("RGB"))
    if arr.ndim == 2:
        arr = arr[..., None]
    key = im.info.get("transparency")
    if arr.shape[-1] in (1, 3) and mode in ("L", "RGB", "I", *_MODES_16) and key is not None:
        arr = _add_key_alpha(arr, key)
    return arr


def _add_key_alpha(arr: np.ndarray, key: Any) -> np.ndarray:
    """Append an alpha channel that is transparent where the pixel equals the colour key."""
    key_arr = np.atleast_1d(np.asarray(key, dtype=np.int64))
    if key_arr.size not in (1, arr.shape[-1]):
        return arr
    keyed = np.all(arr.astype(np.int64) == key_arr, axis=-1, keepdims=True)
    alpha = np.where(keyed, 0, _opaque_value(arr.dtype)).astype(arr.dtype)
    return np.concatenate([arr, alpha], axis=-1)


def _pil_bits(im: Image.Image) -> int:
    return 16 if im.mode in (*_MODES_16, "I", "F") else 8


def load_pil(im: Image.Image) -> Tensor:
    """``(1, C, H, W)`` float32 tensor of a PIL image at its stored precision (C = 1 or 3).

    Grey modes give one channel, the others RGB; alpha follows the module's rule.

    Raises
    ------
    ShapeError
        If the image has no pixels.
    """
    if im.width == 0 or im.height == 0:
        raise ShapeError(f"the PIL image is empty ({im.width} x {im.height}); pass an image with at least one pixel")
    arr = _drop_alpha(_pil_array(im), f"the {im.mode} PIL image")
    return _as_tensor(_to_float(arr))


def normalise_mode(im: Image.Image) -> Image.Image:
    """Grey modes (L, I, I;16, F, 1, LA) -> ``"L"``; every other mode -> ``"RGB"`` (8 bits, alpha dropped).

    Kept for callers that need an 8-bit PIL image; it clips 16-bit data at 255; use
    :func:`load_pil` to keep the precision.
    """
    return im.convert("L") if im.mode in ("L", "I", "I;16", "F", "1", "LA") else im.convert("RGB")


# --------------------------------------------------------------------------------------------
# files


@dataclass(frozen=True)
class ImageInfo:
    """What an image file holds, read from its header without decoding the pixels.

    Attributes
    ----------
    channels : int
        Channels pnpdiff loads: 1 (grey) or 3 (colour); alpha is not counted.
    height, width : int
        Size in pixels.
    bits : int
        8 for 8-bit-or-less data, 16 for 16-bit and float data: the depth to save results with.
    alpha : bool
        Whether the file stores an alpha channel (or a transparency key), which loading drops.
    format : str
        The file format, as Pillow or tifffile names it (``"PNG"``, ``"TIFF"``, ``"JPEG"``, ...).
    """

    channels: int
    height: int
    width: int
    bits: int
    alpha: bool
    format: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the tensor :func:`load_image` returns (without the batch axis)."""
        return (self.channels, self.height, self.width)


def _checked_path(path: str | os.PathLike) -> Path:
    """The path as a :class:`Path`, refused unless it names an existing regular file."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputFileError(f"image file not found: {p}; check the path") from None
    except NotADirectoryError:
        raise InputFileError(f"image file not found: {p} (a part of the path is a file, not a folder)") from None
    except PermissionError:
        raise ImageReadError(f"cannot read {p}: permission denied; check the permissions of its folders") from None
    except ValueError as err:  # an embedded NUL byte, ...
        raise InputFileError(f"not a valid file path: {str(path)!r} ({err})") from None
    except OSError as err:
        raise ImageReadError(f"cannot read {p}: {err.strerror or err}") from None
    if p.is_dir():
        raise InputFileError(f"{p} is a folder; pass an image file")
    if not p.is_file():
        raise InputFileError(f"{p} is not a regular file; pass an image file")
    if st.st_size == 0:
        raise ImageReadError(f"{p} is empty (0 bytes), not a readable image; pnpdiff reads {_FORMATS}")
    return p


def _read_error(p: Path, err: BaseException) -> PnPError:
    if isinstance(err, Image.DecompressionBombError):
        return ValueRangeError(f"{p} is too large to open safely ({err}); downscale it first or pass a smaller image")
    if isinstance(err, PermissionError):
        return ImageReadError(f"cannot read {p}: permission denied; check the permissions of the file")
    if isinstance(err, Image.UnidentifiedImageError):
        reason = "its contents are not in an image format Pillow or tifffile knows"
    else:
        reason = str(err).strip() or type(err).__name__
        reason = reason.replace(str(p), "").strip(" :'\"") or type(err).__name__
    return ImageReadError(f"{p} is not a readable image ({reason}); pnpdiff reads {_FORMATS}")


def _guarded(p: Path, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; every decoding error becomes an :class:`ImageReadError` naming ``p``."""
    try:
        return fn()
    except (PnPError, MemoryError):
        raise
    except Exception as err:  # Pillow and tifffile raise OSError, SyntaxError, ValueError, KeyError, ...
        raise _read_error(p, err) from err


def _is_tiff(p: Path) -> bool:
    with open(p, "rb") as f:
        return f.read(4) in _TIFF_MAGIC


def _tiff_layout(page: Any) -> tuple[int, int, int, np.dtype] | None:
    """(H, W, samples, dtype) of a TIFF page that tifffile reads as it is; None to leave it to Pillow.

    tifffile is used for grey and RGB pages of integer or float samples (Pillow cannot read
    16-bit colour or float colour TIFFs); palette, CMYK, YCbCr, min-is-white and bilevel pages go
    to Pillow.
    """
    import tifffile

    try:
        photometric = page.photometric
        dtype = np.dtype(page.dtype)
        axes = str(page.axes)
        shape = tuple(int(n) for n in page.shape)
    except Exception:
        return None
    if photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
        return None
    if dtype.kind not in "uif":
        return None
    sizes = dict(zip(axes, shape))
    if set(axes) - {"Y", "X", "S"} and any(n != 1 for a, n in sizes.items() if a not in "YXS"):
        return None
    s = sizes.get("S", 1)
    if s not in (1, 2, 3, 4) or (photometric == tifffile.PHOTOMETRIC.RGB and s < 3):
        return None
    return sizes["Y"], sizes["X"], s, dtype


# EXIF orientation (1..8) -> the transposition Pillow's ImageOps.exif_transpose applies, on (H, W, C)
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],  # FLIP_LEFT_RIGHT
    3: lambda a: a[::-1, ::-1],  # ROTATE_180
    4: lambda a: a[::-1],  # FLIP_TOP_BOTTOM
    5: lambda a: a.transpose(1, 0, 2),  # TRANSPOSE
    6: lambda a: np.rot90(a, -1),  # ROTATE_270 (a quarter turn clockwise)
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # TRANSVERSE
    8: lambda a: np.rot90(a, 1),  # ROTATE_90 (a quarter turn anticlockwise)
}
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(="|>)([0-9])')


def _orientation_value(value: Any) -> int:
    """An EXIF Orientation value as 1..8 (anything else, as Pillow treats it: 1, as stored)."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and 1 <= int(value) <= 8:
        return int(value)
    return 1


def _xmp_orientation(xmp: Any) -> int:
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8", "replace")
    match = _XMP_ORIENTATION.search(xmp) if isinstance(xmp, (bytes, bytearray)) else None
    return int(match[2]) if match and 1 <= int(match[2]) <= 8 else 1


def _pil_orientation(im: Image.Image) -> int:
    """The orientation of an opened (not yet decoded) file, as ``ImageOps.exif_transpose`` reads it.

    Read from the header only: a PNG's ``eXIf`` chunk after the pixel data is not looked at (the
    PNG specification puts it before), so :func:`image_info` and :func:`load_image` always agree.
    """
    if im.format == "PNG" and "exif" not in im.info:
        return _xmp_orientation(im.info.get("XML:com.adobe.xmp") or im.info.get("xmp"))
    try:
        return _orientation_value(im.getexif().get(0x0112, 1))
    except Exception:  # a malformed EXIF block: Pillow's own exif_transpose would fail; show it as stored
        return 1


def _left_by_pillow_tiff(p: Path, im: Image.Image, orientation: int, head: _TiffHead | None) -> int:
    """The orientation still to apply to a TIFF that Pillow has loaded.

    Pillow's TIFF reader applies the Orientation tag itself when it loads (and then drops the
    tag); a quarter-turned image that it loaded at its stored size was misread (Pillow 13 does
    so for uncompressed files), and is refused rather than restored garbled.
    """
    if orientation == 1 or 0x0112 in getattr(im, "tag_v2", {}):
        return orientation  # this Pillow left it to us
    if orientation >= 5 and head is not None and im.size != head.stored_wh[::-1]:
        raise ImageReadError(
            f"{p} cannot be read reliably: Pillow, which reads this kind of TIFF, misreads it in its "
            f"orientation {orientation} (a quarter turn); save it compressed (e.g. deflate) or as a PNG"
        )
    return 1


def _oriented(arr: np.ndarray, orientation: int) -> np.ndarray:
    """``(H, W, C)`` as a viewer shows it: the EXIF orientation applied (1: unchanged)."""
    fn = _ORIENT.get(orientation)
    return arr if fn is None else np.ascontiguousarray(fn(arr))


def _one_image(p: Path, n: int, what: str) -> None:
    """Refuse a file that holds ``n`` > 1 pages or frames."""
    if n > 1:
        raise ImageReadError(
            f"{p} holds {n} {what}s; pnpdiff restores one image per file and does not pick a {what}: "
            f"save the {what} you want as a file of its own"
        )


def _pil_frames(im: Image.Image) -> int:
    """Frames of an opened file; an MPO (a camera JPEG with its previews) counts as its main image."""
    if im.format == "MPO":
        return 1
    try:
        return int(getattr(im, "n_frames", 1) or 1)
    except Exception:
        return 1


@dataclass(frozen=True)
class _TiffHead:
    """What the first page of a TIFF declares: tifffile's layout (None: Pillow reads it), the
    samples' BitsPerSample, the orientation, the number of full-resolution pages and the stored
    (width, height), before the orientation."""

    layout: tuple[int, int, int, np.dtype] | None
    sample_bits: int
    orientation: int
    pages: int
    stored_wh: tuple[int, int]


def _tiff_head(p: Path) -> _TiffHead | None:
    """The TIFF's header as tifffile reads it, or None when tifffile cannot parse it (Pillow tries)."""
    import tifffile

    try:
        with tifffile.TiffFile(p) as tif:
            pages = tif.pages
            page = pages[0]
            layout = _tiff_layout(page)
            bps = page.bitspersample
            sample_bits = int(max(bps) if isinstance(bps, tuple) else bps)
            stored_wh = (int(page.imagewidth), int(page.imagelength))
            tags = page.tags
            tag = tags.get(274)
            orientation = _orientation_value(tag.value) if tag is not None else 1
            if tag is None and tags.get(700) is not None:
                orientation = _xmp_orientation(tags.get(700).value)
            n = 0
            for other in pages:  # reduced-resolution previews and masks are not pages of their own
                if not (getattr(other, "is_reduced", False) or getattr(other, "is_mask", False)):
                    n += 1
                    if n > 1 and len(pages) > 64:  # enough to refuse; do not parse thousands of pages
                        n = len(pages)
                        break
    except (PnPError, MemoryError):
        raise
    except Exception:
        return None
    head = _TiffHead(layout, sample_bits, orientation, max(n, 1), stored_wh)
    _one_image(p, head.pages, "page")
    if layout is not None:
        dtype = layout[3]
        if dtype.kind == "i" or (dtype.kind == "u" and head.sample_bits > 16):
            kind = "signed integer" if dtype.kind == "i" else f"{head.sample_bits}-bit integer"
            raise ValueRangeError(
                f"{p} stores {kind} samples ({dtype.name}), which have no standard scale to [0, 1]; "
                "pnpdiff reads unsigned integers of up to 16 bits and floats in [0, 1]: save it as "
                "uint8 or uint16 (e.g. arr.astype(np.uint8) if its values are 0..255) or as float in [0, 1]"
            )
    return head


def _tiff_array(p: Path, head: _TiffHead) -> np.ndarray:
    """The first page of a TIFF as ``(H, W, C)`` via tifffile (``head.layout`` is not None)."""
    import tifffile

    assert head.layout is not None
    _check_pixels(head.layout[0], head.layout[1], str(p), "downscale it first")
    with tifffile.TiffFile(p) as tif:
        page = tif.pages[0]
        arr = np.asarray(page.asarray())
        axes = [a for a in str(page.axes) if a in "YXS"]
        arr = arr.reshape([n for a, n in zip(str(page.axes), page.shape) if a in "YXS"])
    if "S" not in axes:
        arr = arr[..., None]
        axes.append("S")
    arr = np.moveaxis(arr, [axes.index("Y"), axes.index("X"), axes.index("S")], [0, 1, 2])
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    if head.sample_bits != arr.dtype.itemsize * 8:  # 1..15 bits stored in uint8 / uint16: true scale
        return (arr.astype(np.float64) / (2.0**head.sample_bits - 1.0)).astype(np.float32)
    return arr


def _png16_array(p: Path, rawmode: str) -> np.ndarray:
    """A 16-bit colour PNG at full precision: Pillow decodes it once per byte plane."""
    planes = []
    key = None
    for raw in _PNG16_PASSES[rawmode]:
        with Image.open(p) as im:
            key = im.info.get("transparency")
            (tile,) = im.tile
            im.tile = [tile._replace(args=raw) if hasattr(tile, "_replace") else (*tile[:3], raw)]
            im.load()
            planes.append(np.asarray(im).astype(np.uint16))
    if rawmode == "LA;16B":
        (a,) = planes
        return np.stack([(a[..., 0] << 8) | a[..., 1], (a[..., 2] << 8) | a[..., 3]], axis=-1)
    hi, lo = planes
    arr = (hi << 8) | lo
    return _add_key_alpha(arr, key) if rawmode == "RGB;16B" and isinstance(key, tuple) else arr


def _tile_rawmode(im: Image.Image) -> str | None:
    tiles = getattr(im, "tile", None) or []
    if len(tiles) != 1:
        return None
    args = tiles[0][3]
    return args if isinstance(args, str) else (args[0] if args and isinstance(args[0], str) else None)


#: float pixels this close outside [0, 1] (float rounding) are clipped; farther ones are refused
FLOAT_TOLERANCE = 1e-6


def _checked_values(p: Path, arr: np.ndarray) -> np.ndarray:
    """Refuse NaN / infinite float pixels and float pixels outside [0, 1], naming the file."""
    if arr.dtype.kind != "f":
        return arr
    finite = np.isfinite(arr)
    if not finite.all():
        n_nan = int(np.count_nonzero(np.isnan(arr)))
        n_inf = int(arr.size - np.count_nonzero(finite)) - n_nan
        found = " and ".join(f"{n} {kind}" for n, kind in ((n_nan, "NaN"), (n_inf, "infinite")) if n)
        raise ValueRangeError(
            f"{p} has {found} pixel values (of {arr.size}); pnpdiff needs finite "
            "values in [0, 1]: if they mark missing pixels, fill them (e.g. with 0) and give an "
            "inpainting mask for them (operator: {name: Inpaint, mask: FILE}); otherwise fix the file"
        )
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -FLOAT_TOLERANCE or hi > 1.0 + FLOAT_TOLERANCE:
        scale = " (divide by 255 for 0..255 data, by 65535 for 0..65535)" if hi > 1.0 + FLOAT_TOLERANCE else ""
        raise ValueRangeError(
            f"{p} holds float values in [{lo:.6g}, {hi:.6g}], but float images must be in [0, 1]; "
            f"rescale{scale} or clip it to [0, 1] and save it again"
        )
    return np.clip(arr, 0.0, 1.0) if lo < 0.0 or hi > 1.0 else arr


def _read_file(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """``(H, W, C)`` array of an image file at its stored precision (C = 1..4) and its bit depth,
    as a viewer shows it (EXIF orientation applied), its values checked."""
    p = _checked_path(path)

    def read() -> tuple[np.ndarray, int, int]:
        head = _tiff_head(p) if _is_tiff(p) else None
        if head is not None and head.layout is not None:
            try:
                arr = _tiff_array(p, head)
            except (PnPError, MemoryError):
                raise
            except Exception:  # a compression tifffile cannot decode without imagecodecs, ...: try Pillow
                arr = None
            if arr is not None:
                if arr.size == 0:
                    raise ImageReadError(f"{p} has no pixels ({arr.shape[0]} x {arr.shape[1]}); pass a non-empty image")
                return arr, 8 if head.sample_bits <= 8 else 16, head.orientation
        with Image.open(p) as im:
            rawmode = _tile_rawmode(im) if im.format == "PNG" else None
            stored_bits = _tiff_bits(im) if im.format == "TIFF" else 8
            if head is None:
                _one_image(p, _pil_frames(im), "page" if im.format == "TIFF" else "frame")
            orientation = head.orientation if head is not None else _pil_orientation(im)
        if rawmode in _PNG16_PASSES:
            try:
                return _png16_array(p, rawmode), 16, orientation
            except (PnPError, MemoryError):
                raise
            except Exception:  # a Pillow without these decoders: read 8 bits below, or fail as Pillow does
                stored_bits = 16
        with Image.open(p) as im:
            im.load()
            arr = _pil_array(im)
            bits = _pil_bits(im)
            if im.format == "TIFF":
                orientation = _left_by_pillow_tiff(p, im, orientation, head)
        if head is not None and arr.dtype == np.uint16 and 8 < head.sample_bits < 16:
            # Pillow reads 9..15-bit TIFF samples as 0..2**bits - 1 in a 16-bit mode: their true scale
            arr = (arr.astype(np.float64) / (2.0**head.sample_bits - 1.0)).astype(np.float32)
        if stored_bits > 8 and bits == 8:
            _warn(
                f"{p} stores {stored_bits}-bit colour, which this installation reads at 8 bits only; "
                "save it as an uncompressed or zlib-compressed TIFF, or install imagecodecs"
            )
        return arr, bits, orientation

    arr, bits, orientation = _guarded(p, read)
    if arr.size == 0:
        raise ImageReadError(f"{p} has no pixels; pass a non-empty image")
    return _oriented(_checked_values(p, arr), orientation), bits


def _tiff_bits(im: Image.Image) -> int:
    try:
        b = im.tag_v2.get(258, 8)  # BitsPerSample
        return int(max(b) if isinstance(b, tuple) else b)
    except Exception:
        return 8


_MODE_CHANNELS = {"1": 1, "L": 1, "LA": 1, "La": 1, "I": 1, "F": 1, **dict.fromkeys(_MODES_16, 1)}


def image_info(path: str | os.PathLike) -> ImageInfo:
    """Channels, size, bit depth and alpha of an image file, from its header alone.

    The pixel data is not decoded (Pillow opens files lazily; tifffile reads only the tags), so
    this is cheap even for a huge image, and can refuse one before memory is allocated. The size
    is the one :func:`load_image` returns: as a viewer shows the file, its EXIF orientation
    applied (a photo stored 4000 x 3000 with orientation 6 is 3000 wide and 4000 high).

    Parameters
    ----------
    path : str or os.PathLike
        An image file.

    Returns
    -------
    ImageInfo
        ``channels`` (1 or 3, alpha not counted), ``height``, ``width``, ``bits`` (8 or 16, as
        :func:`load_image` reads it), ``alpha``, ``format``.

    Raises
    ------
    InputFileError
        If ``path`` does not exist or is a folder.
    ImageReadError
        If the file is empty, unreadable, not an image, or holds several pages or frames.
    ValueRangeError
        If a TIFF stores samples pnpdiff has no scale for (signed or 32-bit integers).
    """
    p = _checked_path(path)

    def read() -> ImageInfo:
        head = _tiff_head(p) if _is_tiff(p) else None
        if head is not None and head.layout is not None:
            h, w, s, _ = head.layout
            h, w = (w, h) if head.orientation >= 5 else (h, w)
            return ImageInfo(1 if s <= 2 else 3, h, w, 8 if head.sample_bits <= 8 else 16, s in (2, 4), "TIFF")
        with Image.open(p) as im:
            if head is None:
                _one_image(p, _pil_frames(im), "page" if im.format == "TIFF" else "frame")
            w, h = im.size
            if head is not None:  # the stored size (Pillow's TIFF reader may report it turned already)
                (w, h), orientation = head.stored_wh, head.orientation
            elif im.format == "TIFF":  # only Pillow reads it: Pillow reports (and loads) it turned
                orientation = 1
            else:
                orientation = _pil_orientation(im)
            if orientation >= 5:
                w, h = h, w
            mode = im.mode
            rawmode = _tile_rawmode(im) if im.format == "PNG" else None
            alpha = "A" in mode or "a" in mode or "transparency" in im.info
            if rawmode in _PNG16_PASSES:
                return ImageInfo(1 if rawmode == "LA;16B" else 3, h, w, 16, rawmode != "RGB;16B" or alpha, "PNG")
            return ImageInfo(_MODE_CHANNELS.get(mode, 3), h, w, _pil_bits(im), alpha, str(im.format or ""))

    return _guarded(p, read)


@overload
def load_image(path: str | os.PathLike, *, return_bits: Literal[False] = ...) -> Tensor: ...
@overload
def load_image(path: str | os.PathLike, *, return_bits: Literal[True]) -> tuple[Tensor, int]: ...
def load_image(path: str | os.PathLike, *, return_bits: bool = False) -> Tensor | tuple[Tensor, int]:
    """Read an image file into a ``(1, C, H, W)`` float32 tensor in [0, 1] (C = 1 or 3).

    Parameters
    ----------
    path : str or os.PathLike
        A PNG, TIFF, JPEG, ... file; 16-bit PNG and TIFF (grey or colour) and float TIFF are read
        at full precision. Alpha follows the module's rule (dropped; a warning if not opaque).
        The EXIF orientation is applied: the tensor is the image as a viewer shows it.
    return_bits : bool
        Also return the bit depth, 8 or 16 (see the module docstring).

    Returns
    -------
    Tensor or (Tensor, int)
        The image, and with ``return_bits`` its bit depth.

    Raises
    ------
    InputFileError
        If ``path`` does not exist or is a folder.
    ImageReadError
        If the file is empty, truncated, unreadable, not an image, or holds several pages or
        frames (a multi-page TIFF, an animated GIF).
    ValueRangeError
        If float pixels are NaN, infinite or outside [0, 1], or a TIFF stores signed or 32-bit
        integer samples.

    Examples
    --------
    >>> import pnpdiff
    >>> from pnpdiff.io import load_image, save_image
    >>> y = load_image("photo.jpg")  # doctest: +SKIP
    >>> x_hat = pnpdiff.solve(y, operator=pnpdiff.GaussianBlur(2.0))  # doctest: +SKIP
    >>> save_image(x_hat, "restored.png")  # doctest: +SKIP
    """
    arr, bits = _read_file(path)
    x = _as_tensor(_to_float(_drop_alpha(arr, str(path))))
    return (x, bits) if return_bits else x


# --------------------------------------------------------------------------------------------
# writing


def _png16_bytes(arr: np.ndarray) -> bytes:
    """A 16-bit grey ``(H, W)`` or RGB ``(H, W, 3)`` uint16 array as PNG bytes (Sub filter, zlib)."""
    h, w = arr.shape[:2]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    raw = np.ascontiguousarray(arr, dtype=">u2").reshape(h, w * c).view(np.uint8)
    bpp = 2 * c
    filtered = raw.copy()
    filtered[:, bpp:] -= raw[:, :-bpp]  # Sub filter: uint8 arithmetic wraps modulo 256 as PNG wants
    data = np.concatenate([np.ones((h, 1), np.uint8), filtered], axis=1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0 if c == 1 else 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(data.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def save_image(x: Tensor, path: str | os.PathLike, bits: int = 8) -> None:
    """Write a ``(1, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` tensor in [0, 1] to an image file.

    Parameters
    ----------
    x : Tensor
        The image (C = 1 or 3; values are clipped to [0, 1]).
    path : str or os.PathLike
        The file; its suffix picks the format.
    bits : {8, 16}
        8 writes any format Pillow writes; 16 writes a 16-bit grey or RGB PNG (``.png``) or TIFF
        (``.tif``, ``.tiff``), with values ``round(65535 * x)``.

    Raises
    ------
    ValueRangeError
        If ``bits`` is not 8 or 16, or 16 is asked of a format that stores 8 bits.
    """
    if bits not in (8, 16) or isinstance(bits, bool):
        raise ValueRangeError(f"bits must be 8 or 16, got {bits!r}")
    p = Path(path)
    if bits == 8:
        to_pil(x).save(p)
        return
    suffix = p.suffix.lower()
    if suffix not in (".png", ".tif", ".tiff"):
        raise ValueRangeError(f"bits=16 needs a .png, .tif or .tiff file, not {p.name!r}; or save with bits=8")
    arr = to_uint16(x)
    if arr.ndim == 3 and arr.shape[2] != 3:
        raise ShapeError(f"can save 1 or 3 channels, got {arr.shape[2]}")
    if suffix == ".png":
        p.write_bytes(_png16_bytes(arr))
    else:
        import tifffile

        tifffile.imwrite(p, arr, photometric="minisblack" if arr.ndim == 2 else "rgb", compression="zlib")


# --------------------------------------------------------------------------------------------
# to_tensor


def _array_image(arr: np.ndarray) -> np.ndarray:
    """Validate a NumPy image and return it as ``(H, W, C)``, C = 1..4 (dtype unchanged)."""
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4)):
        raise ShapeError(
            f"expected an (H, W) or (H, W, C) array with C = 1 (grey), 2 (grey + alpha), 3 (RGB) or "
            f"4 (RGBA), got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ShapeError(f"the array is empty (shape {arr.shape}); pass an image with at least one pixel")
    if arr.dtype not in (np.uint8, np.uint16, np.bool_) and arr.dtype.kind != "f":
        raise ValueRangeError(
            f"arrays must be uint8 (0..255), uint16 (0..65535), bool (0/1) or float in [0, 1], got {arr.dtype}; "
            "convert with arr.astype(np.uint8) if the values are 0..255, or divide by the maximum value "
            "for floats in [0, 1]"
        )
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr if arr.ndim == 3 else arr[..., None]


def _pil_back(mode: str) -> Callable[[Tensor], Image.Image]:
    """The back-conversion to a PIL image like one of ``mode`` (alpha dropped)."""

    def back(out: Tensor) -> Image.Image:
        grey = out.ndim < 4 or out.shape[1] == 1
        if grey and mode in _MODES_16:
            u16 = to_uint16(out[0])
            order = ">u2" if mode == "I;16B" else "<u2" if mode in ("I;16", "I;16L") else "=u2"
            im = Image.fromarray(u16.astype(order))
            return im if im.mode == mode else Image.fromarray(u16)
        if grey and mode == "I":
            return Image.fromarray(to_uint16(out[0]).astype(np.int32))
        if grey and mode == "F":
            return Image.fromarray(_hwc(out[0]).clamp(0, 1).numpy())
        pil = to_pil(out[0])
        return pil.convert(mode) if mode in ("L", "RGB") else pil

    return back


def to_tensor(img: Any) -> tuple[Tensor, Callable[[Tensor], Any]]:
    """Convert ``img`` to a ``(B, C, H, W)`` float tensor and return a function converting back.

    Parameters
    ----------
    img : Tensor, numpy.ndarray, PIL.Image.Image, str or os.PathLike
        Tensors ``(B, C, H, W)``, ``(C, H, W)``, ``(H, W)`` (floating point, in [0, 1]); NumPy
        arrays ``(H, W)`` or ``(H, W, C)`` with C = 1..4 of dtype uint8 (/255), uint16 (/65535),
        bool (0/1) or float (in [0, 1]); PIL images of any mode (16-bit ``I;16`` / ``I`` and ``F``
        at full precision); paths to image files (see :func:`load_image`). Alpha channels of
        arrays, PIL images and files follow the module's alpha rule.

    Returns
    -------
    x : Tensor
        ``(B, C, H, W)`` float tensor.
    back : callable
        Maps a ``(B, C, H, W)`` result back to the input's kind: the same tensor rank and dtype;
        a NumPy array of the same dtype and rank (uint16 in, uint16 out; bool thresholded at
        0.5; alpha dropped, so ``(H, W, 4)`` gives ``(H, W, 3)``); a PIL image of the same mode
        (``I;16`` stays ``I;16``; modes with alpha, palette, ... give L or RGB); for a path, a PIL
        image (``I;16`` for a 16-bit grey file, 8-bit L or RGB otherwise: PIL has no 16-bit
        colour mode; use :func:`save_image` with ``bits=16`` to keep 16-bit colour).

    Raises
    ------
    ShapeError
        If the input has the wrong rank or channels, or no pixels.
    ValueRangeError
        If a tensor is not floating point or an array has an unsupported dtype.
    InputFileError, ImageReadError
        For paths, as :func:`load_image`.
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
        if x.numel() == 0:
            raise ShapeError(
                f"the image tensor is empty (shape {tuple(img.shape)}); pass an image with at least one pixel"
            )
        dtype = img.dtype

        def back_tensor(out: Tensor) -> Tensor:
            out = out.to(dtype)
            return out if nd == 4 else (out[0] if nd == 3 else out[0, 0])

        return x, back_tensor

    if isinstance(img, np.ndarray):
        arr = _array_image(img)
        arr = _drop_alpha(arr, f"the {img.shape} array")
        x = _as_tensor(_to_float(arr))
        ndim, dtype_np = img.ndim, img.dtype

        def back_array(out: Tensor) -> np.ndarray:
            if dtype_np == np.uint8:
                o = to_uint8(out[0])
            elif dtype_np == np.uint16:
                o = to_uint16(out[0])
            elif dtype_np == np.bool_:
                o = _hwc(out[0]).numpy() > 0.5
            else:
                o = _hwc(out[0]).clamp(0, 1).numpy().astype(dtype_np)
            return o if ndim == 2 else o.reshape(*o.shape[:2], -1)

        return x, back_array

    if isinstance(img, Image.Image):
        x = load_pil(img)
        return x, _pil_back(img.mode)

    if isinstance(img, (str, os.PathLike)):
        x, bits = load_image(img, return_bits=True)
        mode = "I;16" if bits == 16 and x.shape[1] == 1 else ("L" if x.shape[1] == 1 else "RGB")
        return x, _pil_back(mode)
    raise ShapeError(
        f"cannot read an image from {type(img).__name__}; pass a tensor, a NumPy array, a PIL image or a path"
    )


# --------------------------------------------------------------------------------------------
# recipe sources


def _target_size(size: Any) -> tuple[int, int] | None:
    """``None``, a positive int or a pair of positive ints -> ``None`` or ``(H, W)``."""
    if size is None:
        return None

    def positive(n: Any) -> bool:
        return isinstance(n, numbers.Integral) and not isinstance(n, bool) and int(n) > 0

    if positive(size):
        return int(size), int(size)
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(positive(n) for n in size):
        return int(size[0]), int(size[1])
    raise ValueRangeError(
        f"size must be a positive integer (a square side), a pair [height, width] or omitted, got {size!r}"
    )


def _check_pixels(h: int, w: int, what: str, fix: str = "choose a smaller size") -> None:
    if h * w > MAX_PIXELS:
        raise ValueRangeError(
            f"{what} would be {h} x {w} = {h * w / 1e6:.0f} Mpx, more than pnpdiff handles "
            f"({MAX_PIXELS / 1e6:.0f} Mpx); {fix}"
        )


def resolve_image_path(spec: str | os.PathLike, base: Path | None = None) -> Path:
    """The file a recipe's image path names: relative to ``base`` when given.

    ``~`` is expanded; an absolute path is used as given; a relative path is joined to ``base``
    (the recipe file's folder) when ``base`` is given, and is relative to the current folder
    otherwise. The current folder is never searched when ``base`` is given.
    """
    p = Path(spec).expanduser()
    if not p.is_absolute() and base is not None:
        p = Path(base).expanduser() / p
    return p


def _skimage_array(name: str) -> np.ndarray:
    """A scikit-image test photo as ``(H, W, C)`` (uint8, or float for float photos)."""
    import skimage.data

    fn = getattr(skimage.data, name, None)
    public = name in getattr(skimage.data, "__all__", dir(skimage.data)) and not name.startswith("_")
    if fn is None or not callable(fn) or not public or name in _SKIMAGE_NOT_PHOTOS:
        raise RecipeError(f"scikit-image has no test image {name!r} (try {_SKIMAGE_EXAMPLES})")
    try:
        arr = np.asarray(fn())
    except Exception as err:
        raise RecipeError(
            f"scikit-image's test image {name!r} is not available here ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); try {_SKIMAGE_EXAMPLES}"
        ) from None
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255  # as Pillow's mode "1" -> "L"
    try:
        return _array_image(arr)
    except PnPError:
        raise RecipeError(
            f"scikit-image's {name!r} is not a 2-D photo (shape {arr.shape}, {arr.dtype}); try {_SKIMAGE_EXAMPLES}"
        ) from None


def _crop_box(w0: int, h0: int, th: int, tw: int) -> tuple[int, int, int, int]:
    """Centred box (left, top, right, bottom) of aspect ratio th/tw in a w0 x h0 image."""
    if w0 * th > h0 * tw:  # too wide: keep the height
        cw, ch = max(1, min(w0, round(h0 * tw / th))), h0
    else:
        cw, ch = w0, max(1, min(h0, round(w0 * th / tw)))
    left, top = (w0 - cw) // 2, (h0 - ch) // 2
    return left, top, left + cw, top + ch


def _source(spec: str | os.PathLike, base: Path | None) -> tuple[str, Path | None]:
    if isinstance(spec, str) and spec.startswith("skimage:"):
        return spec.split(":", 1)[1], None
    return "", resolve_image_path(spec, base)


def source_image_shape(
    spec: str | os.PathLike, size: int | tuple[int, int] | None, base: Path | None = None
) -> tuple[int, int, int]:
    """``(C, H, W)`` that :func:`load_source_image` would return, without decoding a file's pixels.

    Use it to refuse an absurd ``size`` before anything is allocated. For a file only the header
    is read; a ``skimage:`` photo (at most a few megapixels, bundled) is loaded.

    Parameters
    ----------
    spec, size, base
        As for :func:`load_source_image`.

    Raises
    ------
    InputFileError, ImageReadError, RecipeError, ValueRangeError
        As :func:`load_source_image` would for a missing, unreadable or unknown image or a bad
        ``size`` (the pixel limit is not applied here: compare the result with your own).
    """
    target = _target_size(size)
    name, path = _source(spec, base)
    if path is None:
        arr = _drop_alpha_quiet(_skimage_array(name))
        c, h, w = arr.shape[2], arr.shape[0], arr.shape[1]
    else:
        info = image_info(path)
        c, h, w = info.shape
    return (c, *target) if target is not None else (c, h, w)


def _drop_alpha_quiet(arr: np.ndarray) -> np.ndarray:
    return arr[..., :-1] if arr.shape[-1] in (2, 4) else arr


def load_source_image(
    spec: str | os.PathLike, size: int | tuple[int, int] | None, base: Path | None = None
) -> tuple[Tensor, int]:
    """A recipe's image: ``skimage:NAME`` (a scikit-image test photo) or a file, and its bit depth.

    Parameters
    ----------
    spec : str or os.PathLike
        ``skimage:NAME`` (astronaut, camera, chelsea, coffee, rocket, ...) or a file path. Path
        rule: ``~`` is expanded; an absolute path is used as given; a relative path is resolved
        against ``base`` when ``base`` is given (the current folder is then never searched), and
        against the current folder otherwise.
    size : int, (int, int) or None
        An int ``s`` centre-crops to a square and resizes to ``s x s``; a pair ``(H, W)``
        centre-crops to the aspect ratio H/W and resizes to exactly ``H x W``; None keeps the
        image as it is. Resizing is antialiased bicubic: Pillow's on the 8-bit image for 8-bit
        inputs, and Pillow's on float (mode ``F``) channels for 16-bit and float inputs, so no
        precision is lost (the result is clipped to [0, 1] for 16-bit inputs, as 8 bits clip).
    base : Path or None
        The recipe file's folder.

    Returns
    -------
    x : Tensor
        ``(1, C, H, W)`` float32 in [0, 1], C = 1 or 3 (alpha follows the module's rule).
    bits : int
        8 or 16: the bit depth to save results with (see the module docstring).

    Raises
    ------
    RecipeError
        For an unknown ``skimage:`` name.
    InputFileError, ImageReadError
        For a missing or unreadable file (see :func:`load_image`).
    ValueRangeError
        For a bad ``size``, or when the image or the target has more than :data:`MAX_PIXELS`
        pixels (checked from the header, before decoding or resizing).
    """
    target = _target_size(size)
    if target is not None:
        _check_pixels(*target, "the resized image")
    name, path = _source(spec, base)
    if path is None:
        arr = _skimage_array(name)
        bits = _bits_of(arr.dtype)
        label = f"scikit-image's {name!r}"
    else:
        info = image_info(path)
        _check_pixels(info.height, info.width, str(path), "downscale it first")
        arr, bits = _read_file(path)
        label = str(path)
    arr = _drop_alpha(arr, label)
    if target is not None:
        th, tw = target
        box = _crop_box(arr.shape[1], arr.shape[0], th, tw)
        if arr.dtype == np.uint8:  # 8 bits: Pillow's bicubic on the 8-bit image, as pnpdiff always did
            pil = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
            pil = pil.crop(box).resize((tw, th), Image.BICUBIC, reducing_gap=None)
            arr = np.asarray(pil)
            arr = arr[..., None] if arr.ndim == 2 else arr
        else:
            was_int = arr.dtype.kind in "ub"
            f = _to_float(arr)
            chans = [
                np.asarray(Image.fromarray(f[..., c]).crop(box).resize((tw, th), Image.BICUBIC, reducing_gap=None))
                for c in range(f.shape[2])
            ]
            arr = np.stack(chans, axis=-1).astype(np.float32)
            if was_int:
                arr = np.clip(arr, 0.0, 1.0)
    return _as_tensor(_to_float(arr)), bits


#: file name endings a folder input is searched for (a glob takes whatever it matches)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm")

