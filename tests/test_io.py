"""pnpdiff.io: full-precision reading and writing, one alpha rule, clear errors, recipe sources.

Every file a test reads is written by an independent writer (imageio, tifffile, Pillow or the
numpy + zlib PNG encoder below), and every 16-bit file pnpdiff writes is read back by an
independent reader (tifffile, Pillow for grey, the numpy + zlib PNG decoder below).
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from pnpdiff import io
from pnpdiff.errors import (
    ImageReadError,
    InputFileError,
    PnPError,
    PnPWarning,
    RecipeError,
    ShapeError,
    ValueRangeError,
)

# --------------------------------------------------------------------------------------------
# an independent PNG encoder / decoder (numpy + zlib), written from the PNG specification


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    a, b, c = (v.astype(np.int16) for v in (a, b, c))
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c)).astype(np.uint8)


def _filter_rows(raw: np.ndarray, bpp: int, filters: list[int]) -> bytes:
    """Filter each scanline of ``raw`` (rows x bytes, uint8) with the given filter types."""
    out = []
    prev = np.zeros(raw.shape[1], np.uint8)
    for i, row in enumerate(raw):
        ft = filters[i % len(filters)]
        left = np.concatenate([np.zeros(bpp, np.uint8), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.uint8), prev[:-bpp]])
        if ft == 0:
            f = row
        elif ft == 1:
            f = row - left
        elif ft == 2:
            f = row - prev
        elif ft == 3:
            f = row - ((left.astype(np.uint16) + prev) // 2).astype(np.uint8)
        else:
            f = row - _paeth(left, prev, upleft)
        out.append(bytes([ft]) + f.astype(np.uint8).tobytes())
        prev = row
    return b"".join(out)


# Adam7 passes as (x0, y0, dx, dy)
_ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(
    path: Path, arr: np.ndarray, filters: tuple[int, ...] = (0, 1, 2, 3, 4), interlace: bool = False, trns: bytes = b""
) -> None:
    """Write an (H, W[, C]) uint8 or uint16 array as PNG (grey, grey+alpha, RGB, RGBA; tRNS body)."""
    a = np.asarray(arr)
    h, w = a.shape[:2]
    c = 1 if a.ndim == 2 else a.shape[2]
    depth = 16 if a.dtype == np.uint16 else 8
    be = a.astype(">u2") if depth == 16 else a.astype(np.uint8)
    bpp = c * depth // 8
    if interlace:
        parts = []
        for x0, y0, dx, dy in _ADAM7:
            sub = be[y0::dy, x0::dx]
            if sub.size:
                parts.append(_filter_rows(sub.reshape(sub.shape[0], -1).view(np.uint8), bpp, list(filters)))
        data = b"".join(parts)
    else:
        data = _filter_rows(be.reshape(h, -1).view(np.uint8), bpp, list(filters))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ct = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ct, 0, 0, int(interlace))
    idat = chunk(b"IDAT", zlib.compress(data))
    extra = chunk(b"tRNS", trns) if trns else b""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + idat + chunk(b"IEND", b""))


def read_png(path: Path) -> np.ndarray:
    """Decode a non-interlaced 8- or 16-bit grey/RGB/GA/RGBA PNG to (H, W, C) uint8/uint16."""
    b = path.read_bytes()
    assert b[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(b):
        (n,) = struct.unpack(">I", b[pos : pos + 4])
        kind, body = b[pos + 4 : pos + 8], b[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", b[pos + 8 + n : pos + 12 + n])
        assert zlib.crc32(kind + body) == crc, kind
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert ihdr is not None
    w, h, depth, ct, _, _, interlace = ihdr
    assert interlace == 0 and depth in (8, 16)
    c = {0: 1, 2: 3, 4: 2, 6: 4}[ct]
    bpp = c * depth // 8
    stride = w * bpp
    data = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, stride + 1)
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for i in range(h):
        ft, f = int(data[i, 0]), data[i, 1:]
        row = np.zeros(stride, np.uint8)
        for j in range(stride):
            a = int(row[j - bpp]) if j >= bpp else 0
            up = int(prev[j])
            cc = int(prev[j - bpp]) if j >= bpp else 0
            pred = [0, a, up, (a + up) // 2, int(_paeth(np.array(a), np.array(up), np.array(cc)))][ft]
            row[j] = (int(f[j]) + pred) & 255
        out[i] = row
        prev = row
    if depth == 16:
        return out.view(">u2").astype(np.uint16).reshape(h, w, c)
    return out.reshape(h, w, c)


def test_own_png_codec_agrees_with_pillow(tmp_path: Path) -> None:
    """The test's own encoder and decoder agree with Pillow on 8-bit RGB and 16-bit grey."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    write_png(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), rgb)
    write_png(tmp_path / "i.png", rgb, interlace=True)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "i.png")), rgb)
    g16 = rng.integers(0, 65536, (5, 6), dtype=np.uint16)
    write_png(tmp_path / "b.png", g16)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), g16)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_array_equal(read_png(tmp_path / "c.png"), rgb)


# --------------------------------------------------------------------------------------------
# 16-bit inputs

RAMP = np.linspace(0, 65535, 4 * 300).round().astype(np.uint16).reshape(4, 300)
RGB16 = np.stack([RAMP, RAMP[:, ::-1], (RAMP // 3) + 7], axis=-1)
TOL = 1 / 65535


def _close(x: torch.Tensor, ref: np.ndarray) -> None:
    """``x`` (1, C, H, W) within 1/65535 of ``ref`` (H, W[, C]) / 65535."""
    ref = ref if ref.ndim == 3 else ref[..., None]
    got = x[0].permute(1, 2, 0).double().numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref / 65535.0).max() <= TOL


def test_16bit_grey_png_ramp(tmp_path: Path) -> None:
    p = tmp_path / "ramp.png"
    iio.imwrite(p, RAMP)  # imageio (via Pillow's I;16 writer)
    x, bits = io.load_image(p, return_bits=True)
    assert bits == 16 and x.dtype == torch.float32 and x.shape == (1, 1, 4, 300)
    _close(x, RAMP)
    assert float((x > 254.5 / 255).float().mean()) < 0.01  # was 99.6 % white when clipped at 255
    assert io.image_info(p) == io.ImageInfo(1, 4, 300, 16, False, "PNG")


@pytest.mark.parametrize("interlace", [False, True])
def test_16bit_rgb_png(tmp_path: Path, interlace: bool) -> None:
    p = tmp_path / "rgb.png"
    write_png(p, RGB16, interlace=interlace)  # every filter type, Adam7 too
    x, bits = io.load_image(p, return_bits=True)
    assert bits == 16 and x.shape == (1, 3, 4, 300)
    _close(x, RGB16)
    assert io.image_info(p).shape == (3, 4, 300)


def test_16bit_grey_and_rgb_tiff(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "g.tif", RAMP)
    tifffile.imwrite(tmp_path / "c.tif", RGB16, photometric="rgb")
    tifffile.imwrite(tmp_path / "p.tif", np.moveaxis(RGB16, -1, 0), photometric="rgb", planarconfig="separate")
    tifffile.imwrite(tmp_path / "z.tif", RGB16, photometric="rgb", compression="zlib")
    x, bits = io.load_image(tmp_path / "g.tif", return_bits=True)
    assert bits == 16
    _close(x, RAMP)
    for name in ("c.tif", "p.tif", "z.tif"):
        x, bits = io.load_image(tmp_path / name, return_bits=True)
        assert bits == 16, name
        _close(x, RGB16)
        assert io.image_info(tmp_path / name) == io.ImageInfo(3, 4, 300, 16, False, "TIFF")


def test_float_tiff(tmp_path: Path) -> None:
    f = RGB16.astype(np.float32) / 65535
    tifffile.imwrite(tmp_path / "f.tif", f, photometric="rgb")
    tifffile.imwrite(tmp_path / "g.tif", f[..., 0].astype(np.float64))
    x, bits = io.load_image(tmp_path / "f.tif", return_bits=True)
    assert bits == 16 and x.dtype == torch.float32
    np.testing.assert_array_equal(x[0].permute(1, 2, 0).numpy(), f)
    g = io.load_image(tmp_path / "g.tif")
    np.testing.assert_allclose(g[0, 0].numpy(), f[..., 0], atol=1e-7)


def test_8bit_files_keep_8bit_values(tmp_path: Path) -> None:
    rgb8 = (RGB16 >> 8).astype(np.uint8)
    Image.fromarray(rgb8).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tif", rgb8, photometric="rgb")
    for name in ("a.png", "a.tif"):
        x, bits = io.load_image(tmp_path / name, return_bits=True)
        assert bits == 8
        assert torch.equal(x, torch.from_numpy(rgb8.astype(np.float32) / 255.0).permute(2, 0, 1)[None])


# --------------------------------------------------------------------------------------------
# writing 16 bits


@pytest.mark.parametrize("channels", [1, 3])
def test_save_image_16bit_png_round_trips(tmp_path: Path, channels: int) -> None:
    x = torch.rand(1, channels, 5, 7, generator=torch.Generator().manual_seed(channels))
    x[0, 0, 0, :2] = torch.tensor([0.0, 1.0])
    p = tmp_path / "out.png"
    io.save_image(x, p, bits=16)
    want = np.round(x[0].permute(1, 2, 0).double().numpy() * 65535).astype(np.uint16)
    got = read_png(p)  # independent decoder
    np.testing.assert_array_equal(got, want)
    assert np.abs(got / 65535.0 - x[0].permute(1, 2, 0).double().numpy()).max() <= 0.5 / 65535 + 1e-9
    with Image.open(p) as im:  # Pillow: full precision for grey, the high byte for colour
        if channels == 1:
            assert im.mode == "I;16"
            np.testing.assert_array_equal(np.asarray(im), want[..., 0])
        else:
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), want >> 8)
    y, bits = io.load_image(p, return_bits=True)
    assert bits == 16 and (y - x).abs().max() <= TOL


@pytest.mark.parametrize("channels", [1, 3])
def test_save_image_16bit_tiff_round_trips(tmp_path: Path, channels: int) -> None:
    x = torch.rand(1, channels, 6, 4, generator=torch.Generator().manual_seed(7))
    p = tmp_path / "out.tif"
    io.save_image(x, p, bits=16)
    got = tifffile.imread(p)
    assert got.dtype == np.uint16
    want = np.round(x[0].permute(1, 2, 0).double().numpy() * 65535).astype(np.uint16)
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_save_image_bits_refused(tmp_path: Path) -> None:
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueRangeError, match="bits must be 8 or 16"):
        io.save_image(x, tmp_path / "a.png", bits=12)
    with pytest.raises(ValueRangeError, match=r"\.png, \.tif"):
        io.save_image(x, tmp_path / "a.jpg", bits=16)
    io.save_image(x, tmp_path / "a.png")  # 8 bits by default, as before
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "RGB"


# --------------------------------------------------------------------------------------------
# to_tensor


def test_to_tensor_uint16_array_round_trips() -> None:
    rng = np.random.default_rng(1)
    for arr in (rng.integers(0, 65536, (5, 6), dtype=np.uint16), rng.integers(0, 65536, (5, 6, 3), dtype=np.uint16)):
        x, back = io.to_tensor(arr)
        assert x.dtype == torch.float32 and float(x.max()) <= 1.0
        out = back(x)
        assert out.dtype == np.uint16 and out.shape == arr.shape
        np.testing.assert_array_equal(out, arr)


def test_to_tensor_16bit_pil_keeps_its_mode(tmp_path: Path) -> None:
    im = Image.fromarray(RAMP)
    assert im.mode == "I;16"
    x, back = io.to_tensor(im)
    _close(x, RAMP)
    out = back(x)
    assert out.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(out), RAMP)
    xi, back_i = io.to_tensor(im.convert("I"))
    _close(xi, RAMP)
    assert back_i(xi).mode == "I"
    iio.imwrite(tmp_path / "r.png", RAMP)
    xp, back_p = io.to_tensor(tmp_path / "r.png")
    assert back_p(xp).mode == "I;16"


def test_to_tensor_8bit_unchanged() -> None:
    arr = np.arange(24, dtype=np.uint8).reshape(2, 4, 3) * 10
    x, back = io.to_tensor(arr)
    assert torch.equal(x, torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1)[None])
    np.testing.assert_array_equal(back(x), arr)
    f = arr.astype(np.float64) / 255
    xf, back_f = io.to_tensor(f)
    assert back_f(xf).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int16, np.uint32, np.complex64])
def test_to_tensor_refuses_other_dtypes(dtype: type) -> None:
    with pytest.raises(ValueRangeError, match="uint8.*uint16") as err:
        io.to_tensor(np.zeros((4, 4), dtype=dtype))
    assert isinstance(err.value, ValueError)


def test_to_tensor_bool_is_zero_one() -> None:
    m = np.array([[True, False], [False, True]])
    x, back = io.to_tensor(m)
    assert torch.equal(x[0, 0], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    out = back(x)
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, m)


@pytest.mark.parametrize(
    "img",
    [
        torch.zeros(1, 3, 0, 0),
        torch.zeros(0, 3, 4, 4),
        torch.zeros(3, 5, 0),
        np.zeros((0, 5), np.uint8),
        np.zeros((5, 0, 3), np.float32),
        Image.new("RGB", (0, 0)),
        Image.new("L", (4, 0)),
    ],
    ids=["t1300", "t0344", "t350", "a05", "a503", "pil00", "pil40"],
)
def test_empty_images_are_shape_errors(img: object) -> None:
    with pytest.raises(ShapeError, match="empty"):
        io.to_tensor(img)


def test_non_float_tensor_still_refused() -> None:
    with pytest.raises(ValueRangeError, match="floating point"):
        io.to_tensor(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))


def test_bad_array_shape() -> None:
    with pytest.raises(ShapeError, match="C = 1"):
        io.to_tensor(np.zeros((4, 4, 5), np.uint8))


# --------------------------------------------------------------------------------------------
# alpha


def _rgba(opaque: bool) -> np.ndarray:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    a[..., 3] = 255
    if not opaque:
        a[2:4, 1:3, 3] = 0
        a[0, 0, 3] = 128
    return a


def _load_three_ways(arr: np.ndarray, tmp_path: Path) -> list[tuple[torch.Tensor, list[str]]]:
    mode = {2: "LA", 4: "RGBA"}[arr.shape[-1]]
    path = tmp_path / f"img_{mode}.png"
    Image.fromarray(arr, mode).save(path)
    results = []
    for make in (lambda: Image.fromarray(arr, mode), lambda: arr, lambda: path):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            x, _ = io.to_tensor(make())
        msgs = [str(w.message) for w in rec if issubclass(w.category, PnPWarning)]
        assert all(w.category is PnPWarning for w in rec if "alpha" in str(w.message))
        results.append((x, msgs))
    return results


@pytest.mark.parametrize("grey", [False, True])
def test_alpha_rule_same_for_pil_array_file(tmp_path: Path, grey: bool) -> None:
    arr = _rgba(opaque=False)
    if grey:
        arr = arr[..., [0, 3]].copy()
    results = _load_three_ways(arr, tmp_path)
    want = torch.from_numpy(arr[..., :-1].astype(np.float32) / 255).permute(2, 0, 1)[None]
    tails = set()
    for x, msgs in results:
        assert torch.equal(x, want)  # colour channels as stored, transparent pixels too
        assert len(msgs) == 1 and "alpha" in msgs[0] and "stored" in msgs[0]
        tails.add(msgs[0].split(" has ", 1)[1])  # the same message but for what it names
    assert len(tails) == 1
    assert "5 of 30 pixels" in tails.pop()


def test_opaque_alpha_dropped_silently(tmp_path: Path) -> None:
    arr = _rgba(opaque=True)
    for x, msgs in _load_three_ways(arr, tmp_path):
        assert msgs == []
        assert x.shape == (1, 3, 6, 5)


def test_alpha_outputs_have_no_alpha(tmp_path: Path) -> None:
    arr = _rgba(opaque=True)
    x, back = io.to_tensor(arr)
    assert back(x).shape == (6, 5, 3)
    xp, back_p = io.to_tensor(Image.fromarray(arr, "RGBA"))
    assert back_p(xp).mode == "RGB"


def test_alpha_16bit_png_and_float_array(tmp_path: Path) -> None:
    rgba = np.concatenate([RGB16, np.full((*RGB16.shape[:2], 1), 65535, np.uint16)], axis=-1)
    write_png(tmp_path / "o.png", rgba)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = io.load_image(tmp_path / "o.png")
    _close(x, RGB16)
    rgba[0, 0, 3] = 65534
    write_png(tmp_path / "t.png", rgba)
    with pytest.warns(PnPWarning, match="1 of 1200 pixels"):
        _close(io.load_image(tmp_path / "t.png"), RGB16)
    la = np.stack([RAMP, RAMP], axis=-1)
    write_png(tmp_path / "la.png", la)
    with pytest.warns(PnPWarning, match="alpha"):
        x, bits = io.load_image(tmp_path / "la.png", return_bits=True)
    assert bits == 16
    _close(x, RAMP)
    f = np.ones((3, 3, 4), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        io.to_tensor(f)
    f[1, 1, 3] = 0.5
    with pytest.warns(PnPWarning, match="alpha"):
        io.to_tensor(f)


def test_16bit_colour_key(tmp_path: Path) -> None:
    key = RGB16[1, 7]
    write_png(tmp_path / "k.png", RGB16, trns=struct.pack(">HHH", *key.tolist()))
    assert io.image_info(tmp_path / "k.png").alpha
    n = int(np.all(RGB16 == key, axis=-1).sum())
    with pytest.warns(PnPWarning, match=f"{n} of 1200 pixels"):
        _close(io.load_image(tmp_path / "k.png"), RGB16)


def test_16bit_colour_png_without_the_decoders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Pillow lacking the byte-plane decoders: 8 bits, and a warning saying so."""
    write_png(tmp_path / "rgb.png", RGB16)

    def missing(*args: object) -> None:
        raise ValueError("unknown raw mode")

    monkeypatch.setattr(io, "_png16_array", missing)
    with pytest.warns(PnPWarning, match="16-bit colour.*8 bits"):
        x, bits = io.load_image(tmp_path / "rgb.png", return_bits=True)
    assert bits == 8
    assert torch.equal(x, torch.from_numpy((RGB16 >> 8).astype(np.float32) / 255).permute(2, 0, 1)[None])


def test_palette_transparency(tmp_path: Path) -> None:
    im = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), "P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    im.info["transparency"] = 1
    im.save(tmp_path / "p.png", transparency=1)
    with pytest.warns(PnPWarning, match="2 of 4 pixels"):
        x = io.load_image(tmp_path / "p.png")
    assert torch.equal(x[0, :, 0, 1], torch.tensor([0.0, 1.0, 0.0]))  # the stored colour


# --------------------------------------------------------------------------------------------
# bad files


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, type, type, str]]:
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8) + 100).save(good)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "truncated.png").write_bytes(good.read_bytes()[:60])
    (tmp_path / "text.png").write_text("this is not an image\n")
    tifffile.imwrite(tmp_path / "full.tif", RGB16, photometric="rgb")
    (tmp_path / "truncated.tif").write_bytes((tmp_path / "full.tif").read_bytes()[:1500])
    (tmp_path / "folder.png").mkdir()
    return {
        "missing": (tmp_path / "nope.png", InputFileError, FileNotFoundError, "not found"),
        "folder": (tmp_path / "folder.png", InputFileError, FileNotFoundError, "is a folder; pass an image file"),
        "empty": (tmp_path / "empty.png", ImageReadError, OSError, "empty"),
        "truncated": (tmp_path / "truncated.png", ImageReadError, OSError, "not a readable image"),
        "truncated_tif": (tmp_path / "truncated.tif", ImageReadError, OSError, "not a readable image"),
        "text": (tmp_path / "text.png", ImageReadError, OSError, "not a readable image"),
    }


CASES = ["missing", "folder", "empty", "truncated", "truncated_tif", "text"]
LOADERS = {
    "load_image": io.load_image,
    "image_info": io.image_info,
    "to_tensor": io.to_tensor,
    "load_source_image": lambda p: io.load_source_image(str(p), None),
    "load_source_image_64": lambda p: io.load_source_image(str(p), 64),
    "source_image_shape": lambda p: io.source_image_shape(str(p), 64),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("loader", list(LOADERS))
def test_bad_files(tmp_path: Path, case: str, loader: str) -> None:
    path, cls, builtin, text = _bad_files(tmp_path)[case]
    if loader in ("image_info", "source_image_shape") and case.startswith("truncated"):
        LOADERS[loader](path)  # the header is intact: these do not decode the pixels
        return
    with pytest.raises(cls) as err:
        LOADERS[loader](path)
    assert isinstance(err.value, builtin) and isinstance(err.value, PnPError)
    msg = str(err.value)
    assert path.name in msg and text in msg
    if cls is ImageReadError:
        assert "PNG, TIFF" in msg
    assert "\n" not in msg


def test_bad_path_strings(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not a valid file path"):
        io.load_image("bad\x00name.png")
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(InputFileError, match="not found"):
        io.load_image(tmp_path / "afile" / "x.png")


def test_no_decoder_error_escapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(good)
    for exc in (SyntaxError("broken PNG file"), OSError("decoder error -2"), Image.UnidentifiedImageError("x")):

        def boom(*args: object, _e: Exception = exc, **kwargs: object) -> None:
            raise _e

        with monkeypatch.context() as m:
            m.setattr(Image, "open", boom)
            with pytest.raises(ImageReadError, match="good.png is not a readable image"):
                io.load_image(good)


def test_permission_denied_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(good)

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(good))

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(ImageReadError, match="permission denied") as err:
        io.load_image(good)
    assert isinstance(err.value, OSError) and "good.png" in str(err.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "locked.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(p)
    p.chmod(0)
    try:
        with pytest.raises(ImageReadError, match="locked.png") as err:
            io.load_image(p)
        assert isinstance(err.value, OSError)
    finally:
        p.chmod(0o644)


def _png_from_chunks(chunks: list[bytes]) -> bytes:
    """A PNG file of the given chunks (each its type followed by its body)."""
    body = b"".join(struct.pack(">I", len(c) - 4) + c + struct.pack(">I", zlib.crc32(c)) for c in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


def test_huge_header_refused_cleanly(tmp_path: Path) -> None:
    """A header claiming 100000 x 100000 pixels: a ValueRangeError, never Pillow's own error."""
    p = tmp_path / "bomb.png"
    chunks = [b"IHDR" + struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0), b"IDAT" + zlib.compress(b""), b"IEND"]
    p.write_bytes(_png_from_chunks(chunks))
    for load in (io.load_image, io.image_info, lambda q: io.load_source_image(str(q), 64)):
        with pytest.raises(ValueRangeError, match="bomb.png"):
            load(p)
    # tifffile has no limit of its own: pnpdiff's applies (the header of a 20000 x 20000 TIFF, no pixels)
    tags = [
        (256, 4, 20000),
        (257, 4, 20000),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 200),
        (277, 3, 1),
        (278, 4, 20000),
        (279, 4, 20000 * 20000),
    ]
    entries = b"".join(struct.pack("<HHII", k, t, 1, v) for k, t, v in tags)
    ifd = struct.pack("<H", len(tags)) + entries + struct.pack("<I", 0)
    (tmp_path / "big.tif").write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd)
    with pytest.raises(ValueRangeError, match="downscale it first"):
        io.load_image(tmp_path / "big.tif")
    assert io.image_info(tmp_path / "big.tif").shape == (1, 20000, 20000)


# --------------------------------------------------------------------------------------------
# load_source_image


def _old_load_source_image(arr_or_path: np.ndarray | Path, size: int | None) -> torch.Tensor:
    """pnpdiff 0.1's implementation, frozen with plain Pillow calls."""
    pil = Image.fromarray(arr_or_path) if isinstance(arr_or_path, np.ndarray) else Image.open(arr_or_path)
    pil.load()
    pil = pil.convert("L") if pil.mode in ("L", "I", "I;16", "F", "1", "LA") else pil.convert("RGB")
    if size is not None:
        w, h = pil.size
        s = min(w, h)
        pil = pil.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        pil = pil.resize((size, size), Image.BICUBIC, reducing_gap=None)
    t = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0)
    return t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]


@pytest.mark.parametrize("name", ["astronaut", "camera", "chelsea", "rocket", "horse"])
@pytest.mark.parametrize("size", [64, 256, None])
def test_8bit_source_bit_identical(name: str, size: int | None) -> None:
    import skimage.data

    x, bits = io.load_source_image(f"skimage:{name}", size)
    assert bits == 8
    assert torch.equal(x, _old_load_source_image(getattr(skimage.data, name)(), size))


def test_8bit_source_bit_identical_files(tmp_path: Path) -> None:
    import skimage.data

    rgb = skimage.data.chelsea()
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=90)
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(tmp_path / "c_rgba.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "c_p.png")
    for name in ("c.png", "c.jpg", "c_rgba.png", "c_p.png"):
        for size in (48, None):
            x, bits = io.load_source_image(str(tmp_path / name), size)
            assert bits == 8
            assert torch.equal(x, _old_load_source_image(tmp_path / name, size)), (name, size)


def test_frozen_pixels() -> None:
    """A few pixels of astronaut at 64 x 64, computed once with Pillow 13 (bicubic, antialiased)."""
    x, _ = io.load_source_image("skimage:astronaut", 64)
    got = np.round(x[0, :, [0, 20, 40, 63], [0, 31, 50, 63]].numpy() * 255).astype(int)
    want = _old_load_source_image(__import__("skimage.data").data.astronaut(), 64)
    np.testing.assert_array_equal(got, np.round(want[0, :, [0, 20, 40, 63], [0, 31, 50, 63]].numpy() * 255))


@pytest.mark.parametrize(
    ("size", "shape"),
    [
        (64, (3, 64, 64)),
        ((32, 80), (3, 32, 80)),
        ((90, 30), (3, 90, 30)),
        ([40, 40], (3, 40, 40)),
        (None, (3, 300, 451)),
    ],
)
def test_source_sizes(size: object, shape: tuple[int, int, int]) -> None:
    x, _ = io.load_source_image("skimage:chelsea", size)  # 300 x 451
    assert tuple(x.shape) == (1, *shape)
    assert io.source_image_shape("skimage:chelsea", size) == shape


def test_pair_size_crops_to_the_aspect_ratio(tmp_path: Path) -> None:
    """(H, W) = (10, 20) of a 40 x 60 image: the centred 30 x 60 band, halved."""
    a = np.zeros((40, 60), np.uint8)
    a[5:35] = 200  # the band that an aspect-2 crop keeps
    a[:5] = a[35:] = 10
    Image.fromarray(a).save(tmp_path / "band.png")
    x, _ = io.load_source_image(str(tmp_path / "band.png"), (15, 60))
    assert x.shape == (1, 1, 15, 60)
    np.testing.assert_allclose(x.numpy(), 200 / 255, atol=1e-6)


@pytest.mark.parametrize("size", [0, -3, 2.5, "64", (64,), (64, 0), True])
def test_bad_size(size: object) -> None:
    with pytest.raises(ValueRangeError, match="size"):
        io.load_source_image("skimage:camera", size)  # type: ignore[arg-type]


def test_16bit_source_keeps_precision(tmp_path: Path) -> None:
    """A gradient spanning less than one 8-bit step keeps its levels through the resize."""
    g = (30000 + np.arange(100 * 120).reshape(100, 120) % 200).astype(np.uint16)
    g = np.sort(g, axis=1)
    rgb = np.stack([g, g, g], axis=-1)
    tifffile.imwrite(tmp_path / "g.tif", rgb, photometric="rgb")
    write_png(tmp_path / "g.png", rgb)
    for name in ("g.tif", "g.png"):
        x, bits = io.load_source_image(str(tmp_path / name), (50, 60))
        assert bits == 16 and x.shape == (1, 3, 50, 60)
        levels = np.unique(np.round(x.numpy() * 65535))
        assert len(levels) > 50  # 8 bits would leave one or two
        assert 29999 / 65535 <= float(x.min()) and float(x.max()) <= 30200 / 65535
    # the same resize as the 8-bit path, to within the 8-bit path's rounding
    ramp8 = (RGB16 >> 8).astype(np.uint8)
    tifffile.imwrite(tmp_path / "r16.tif", ramp8.astype(np.uint16) * 257, photometric="rgb")
    tifffile.imwrite(tmp_path / "r8.tif", ramp8, photometric="rgb")
    for size in (3, (2, 150), (4, 17)):
        a, _ = io.load_source_image(str(tmp_path / "r16.tif"), size)
        b, _ = io.load_source_image(str(tmp_path / "r8.tif"), size)
        assert a.shape == b.shape
        assert (a - b).abs().max() <= 1.5 / 255  # Pillow's 8-bit resize rounds between its two passes


def test_relative_path_resolved_against_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, cwd = tmp_path / "recipes", tmp_path / "elsewhere"
    base.mkdir()
    cwd.mkdir()
    Image.fromarray(np.full((8, 8), 10, np.uint8)).save(base / "img.png")
    Image.fromarray(np.full((8, 8), 250, np.uint8)).save(cwd / "img.png")
    Image.fromarray(np.full((8, 8), 99, np.uint8)).save(cwd / "only_here.png")
    monkeypatch.chdir(cwd)
    x, _ = io.load_source_image("img.png", None, base)
    assert float(x.mean()) == pytest.approx(10 / 255)
    assert io.source_image_shape("img.png", None, base) == (1, 8, 8)
    x, _ = io.load_source_image("img.png", None)  # no base: the current folder
    assert float(x.mean()) == pytest.approx(250 / 255)
    with pytest.raises(InputFileError, match="only_here.png"):
        io.load_source_image("only_here.png", None, base)  # never the cwd when base is given
    x, _ = io.load_source_image(str(cwd / "only_here.png"), None, base)  # absolute: as given
    assert float(x.mean()) == pytest.approx(99 / 255)
    monkeypatch.setenv("HOME", str(cwd))
    x, _ = io.load_source_image("~/only_here.png", None, base)  # ~: as given
    assert float(x.mean()) == pytest.approx(99 / 255)
    assert io.resolve_image_path("a/b.png", base) == base / "a" / "b.png"


def test_unknown_skimage_name() -> None:
    for name in ("nosuchphoto", "download_all", "lfw_subset", "_fetch"):
        with pytest.raises(RecipeError, match="astronaut") as err:
            io.load_source_image(f"skimage:{name}", 64)
        assert isinstance(err.value, ValueError)


def test_target_over_the_pixel_limit() -> None:
    with pytest.raises(ValueRangeError, match="smaller size"):
        io.load_source_image("skimage:camera", 100000)
    with pytest.raises(ValueRangeError, match="smaller size"):
        io.load_source_image("skimage:camera", (2**15, 2**13 + 1))
    assert io.source_image_shape("skimage:camera", 100000) == (1, 100000, 100000)


def test_source_image_shape_does_not_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_png(tmp_path / "a.png", RGB16)
    opaque = np.full((*RGB16.shape[:2], 1), 65535, np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", np.concatenate([RGB16, opaque], axis=-1), photometric="rgb", extrasamples=[2])
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "a.jpg")
    # a header that promises a 9000 x 9000 16-bit RGB image (486 MB decoded) and holds no pixels
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 9000, 9000, 16, 2, 0, 0, 0)
    (tmp_path / "big.png").write_bytes(_png_from_chunks([ihdr, b"IDAT" + zlib.compress(b"\x00" * 10), b"IEND"]))
    want = {}
    for name in ("a.png", "a.tif", "a.jpg"):
        want[name] = tuple(io.load_source_image(str(tmp_path / name), None)[0].shape[1:])

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("pixel data decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_decoding)
    for name, shape in want.items():
        assert io.source_image_shape(str(tmp_path / name), None) == shape
        assert io.source_image_shape(str(tmp_path / name), (5, 7)) == (shape[0], 5, 7)
    assert io.source_image_shape(str(tmp_path / "big.png"), None) == (3, 9000, 9000)
    assert io.image_info(tmp_path / "big.png") == io.ImageInfo(3, 9000, 9000, 16, False, "PNG")
    assert io.image_info(tmp_path / "a.tif") == io.ImageInfo(3, 4, 300, 16, True, "TIFF")
