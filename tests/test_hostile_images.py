"""Image files read as a viewer shows them, and hostile files refused with their name (issue 25, item 5).

* EXIF orientation: every value 1..8 gives the pixels Pillow's own ``ImageOps.exif_transpose``
  gives (the reference), for JPEG, PNG and TIFF (Pillow's and tifffile's read paths), and the
  header-only size (``image_info``, ``source_image_shape``: what ``--dry-run`` and the memory guard
  use) is the same size.
* NaN / infinite float pixels, float pixels outside [0, 1], signed and 32-bit integer TIFFs and
  multi-page / animated files are refused naming the file, through ``load_image``, ``solve(path)``
  and ``python -m pnpdiff``; 2..15-bit TIFFs are read at their true scale.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageOps, features
from tree_utils import tree_snapshot as _tree

from pnpdiff import io
from pnpdiff.errors import ImageReadError, PnPError, ValueRangeError

ORIENTATION = 0x0112


def _marked(h: int = 48, w: int = 56) -> np.ndarray:
    """An RGB image with a white block in its stored top-left corner and a grey ramp elsewhere."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[...] = (np.arange(w, dtype=np.uint8) * 3)[None, :, None]
    arr[:, :, 1] = (np.arange(h, dtype=np.uint8) * 4)[:, None]
    arr[:8, :8] = 255
    return arr


def _exif(orientation: int) -> bytes:
    ex = Image.Exif()
    ex[ORIENTATION] = orientation
    return ex.tobytes()


def _shown(im: Image.Image, orientation: int) -> np.ndarray:
    """What a viewer shows: Pillow's exif_transpose of the stored pixels ``im`` with ``orientation``,
    as (H, W, C) floats in [0, 1]."""
    im = im.copy()
    im.getexif()[ORIENTATION] = orientation
    shown = ImageOps.exif_transpose(im)
    arr = np.asarray(shown).astype(np.float64) / (65535.0 if shown.mode.startswith("I;16") else 255.0)
    return arr if arr.ndim == 3 else arr[..., None]


def _write_oriented(tmp_path: Path, fmt: str, orientation: int) -> tuple[Path, np.ndarray]:
    """A file of ``fmt`` with ``orientation``, and what a viewer shows of it."""
    arr = _marked()
    p = tmp_path / f"o{orientation}.{fmt}"
    if fmt == "jpg":
        Image.fromarray(arr).save(p, exif=_exif(orientation), quality=95)
        with Image.open(p) as im:  # the decoded (lossy) pixels, as stored
            im.load()
            return p, _shown(im, orientation)
    if fmt == "png":
        Image.fromarray(arr).save(p, exif=_exif(orientation))
        return p, _shown(Image.fromarray(arr), orientation)
    p = tmp_path / f"o{orientation}.tif"
    if fmt == "tif8":  # RGB written by Pillow, read by tifffile
        Image.fromarray(arr).save(p, exif=_exif(orientation))
        return p, _shown(Image.fromarray(arr), orientation)
    if fmt == "tifpal":  # a palette TIFF: Pillow reads it (and turns it itself)
        pal = Image.fromarray(arr).quantize(64)
        pal.save(p, tiffinfo={274: orientation}, compression="tiff_deflate")
        return p, _shown(pal.convert("RGB"), orientation)
    # a 16-bit grey TIFF written by tifffile with the Orientation tag
    grey = arr[..., 1].astype(np.uint16) * 257 + np.arange(arr.shape[1], dtype=np.uint16)[None]
    tifffile.imwrite(p, grey, photometric="minisblack", extratags=[(274, "H", 1, orientation, True)])
    return p, _shown(Image.fromarray(grey), orientation)


# ------------------------------------------------------------------------------ EXIF orientation
@pytest.mark.parametrize("fmt", ["jpg", "png", "tif8", "tif16", "tifpal"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_read_as_pillow_shows_it(tmp_path: Path, fmt: str, orientation: int) -> None:
    """Bug caught: orientation ignored (the image restored sideways or mirrored), a wrong
    transposition for one of the eight values, or the header-only size not swapped."""
    p, ref = _write_oriented(tmp_path, fmt, orientation)
    x = io.load_image(p)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).double().numpy(), ref, atol=1e-6)
    assert io.image_info(p).shape == tuple(x.shape[1:])
    assert io.source_image_shape(str(p), None) == tuple(x.shape[1:])
    y, _ = io.load_source_image(str(p), None)
    assert torch.equal(y, x)


def test_phone_photo_held_upright_comes_out_upright(tmp_path: Path) -> None:
    """The issue's case: stored 56 wide x 48 high with orientation 6 (the camera turned a quarter
    clockwise) is shown 48 wide x 56 high, the stored top-left corner at the top right."""
    p, _ = _write_oriented(tmp_path, "jpg", 6)
    x = io.load_image(p)
    assert tuple(x.shape) == (1, 3, 56, 48)
    assert float(x[0, :, :8, -8:].min()) > 0.95  # the white block, now top right
    assert float(x[0, :, :8, :8].min()) < 0.5
    assert io.image_info(p).shape == (3, 56, 48)
    # solve(path) restores the upright image and gives it back upright
    import pnpdiff

    out = pnpdiff.solve(str(p), operator=pnpdiff.Identity(), sigma_y=0.02)
    assert isinstance(out, Image.Image) and out.size == (48, 56)


def test_pil_images_and_arrays_are_taken_as_their_pixels_are(tmp_path: Path) -> None:
    """The rule is for files: a PIL image a user opened keeps its pixels (back() must fit it)."""
    p, _ = _write_oriented(tmp_path, "png", 6)
    with Image.open(p) as im:
        x, back = io.to_tensor(im)
        assert tuple(x.shape[-2:]) == (48, 56)
        assert back(x).size == im.size


def test_a_tiff_pillow_misreads_in_its_orientation_is_refused(tmp_path: Path) -> None:
    """Pillow 13 loads an uncompressed palette TIFF of orientation 6 at its stored size, garbled:
    refused naming the file, never restored sideways or garbled (nor turned twice)."""
    p = tmp_path / "raw_pal.tif"
    Image.fromarray(_marked()).quantize(64).save(p, tiffinfo={274: 6}, compression="raw")
    with Image.open(p) as im:
        im.load()
        if im.size == (48, 56):
            pytest.skip("this Pillow reads it right")
    with pytest.raises(ImageReadError, match="raw_pal.tif"):
        io.load_image(p)


# ------------------------------------------------------------------------------ float values
def _float_tiff(tmp_path: Path, name: str, values: np.ndarray) -> Path:
    p = tmp_path / name
    tifffile.imwrite(p, values.astype(np.float32))
    return p


def _hostile(tmp_path: Path) -> dict[str, tuple[Path, type, str]]:
    """name -> (file, error class, words the message must hold besides the file's name)."""
    ramp = np.linspace(0, 1, 32 * 40, dtype=np.float32).reshape(32, 40)
    some_nan = ramp.copy()
    some_nan[3, 4] = np.nan
    some_inf = ramp.copy()
    some_inf[5, 6] = np.inf
    cases: dict[str, tuple[Path, type, str]] = {
        "some_nan": (_float_tiff(tmp_path, "some_nan.tif", some_nan), ValueRangeError, "1 NaN"),
        "all_nan": (_float_tiff(tmp_path, "all_nan.tif", np.full((32, 40), np.nan)), ValueRangeError, "1280 NaN"),
        "some_inf": (_float_tiff(tmp_path, "some_inf.tif", some_inf), ValueRangeError, "1 infinite"),
        "float_255": (_float_tiff(tmp_path, "float_255.tif", ramp * 255), ValueRangeError, "[0, 255]"),
        "float_neg": (_float_tiff(tmp_path, "float_neg.tif", ramp - 0.5), ValueRangeError, "[-0.5, 0.5]"),
    }
    for dt in (np.int8, np.int16, np.int32, np.uint32):
        p = tmp_path / f"{np.dtype(dt).name}.tif"
        tifffile.imwrite(p, (ramp * 100).astype(dt))
        cases[np.dtype(dt).name] = (p, ValueRangeError, np.dtype(dt).name)
    p = tmp_path / "pil_int32.tif"
    Image.fromarray((ramp * 255).astype(np.int32)).save(p)  # Pillow's mode "I"
    cases["pil_int32"] = (p, ValueRangeError, "signed integer")
    p = tmp_path / "two_pages.tif"
    tifffile.imwrite(p, np.zeros((2, 32, 40), np.uint8))
    cases["two_pages"] = (p, ImageReadError, "2 pages")
    frames = [Image.new("RGB", (40, 32), (40 * i, 90, 120)) for i in range(3)]
    p = tmp_path / "pil_pages.tif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    cases["pil_pages"] = (p, ImageReadError, "3 pages")
    for ext in ("gif", "png") + (("webp",) if features.check("webp") else ()):
        p = tmp_path / f"animated.{ext}"
        frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
        cases[f"animated_{ext}"] = (p, ImageReadError, "3 frames")
    return cases


CASES = ["some_nan", "all_nan", "some_inf", "float_255", "float_neg", "int8", "int16", "int32", "uint32",
         "pil_int32", "two_pages", "pil_pages", "animated_gif", "animated_png"]
HEADER_CASES = {"int8", "int16", "int32", "uint32", "pil_int32", "two_pages", "pil_pages", "animated_gif",
                "animated_png"}


@pytest.mark.parametrize("case", CASES)
def test_hostile_files_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    """Bug caught: NaN/inf pixels, out-of-range floats, misread integer depths or page 1 of
    several taken silently (or an error that does not name the file)."""
    path, cls, words = _hostile(tmp_path)[case]
    loaders = [io.load_image, lambda q: io.load_source_image(str(q), None), lambda q: io.to_tensor(q)]
    if case in HEADER_CASES:  # known from the header: refused before any pixel is decoded (--dry-run)
        loaders += [io.image_info, lambda q: io.source_image_shape(str(q), 16)]
    for load in loaders:
        with pytest.raises(cls) as err:
            load(path)
        msg = str(err.value)
        assert isinstance(err.value, PnPError)
        assert path.name in msg and words in msg and "\n" not in msg, msg


@pytest.mark.parametrize("case", ["all_nan", "float_255", "int32", "two_pages"])
def test_solve_on_a_hostile_path_names_it(tmp_path: Path, case: str) -> None:
    import pnpdiff

    path, cls, words = _hostile(tmp_path)[case]
    with pytest.raises(cls, match=path.name):
        pnpdiff.solve(str(path), operator=pnpdiff.Identity(), sigma_y=0.02)


def test_float_rounding_just_outside_the_range_is_clipped(tmp_path: Path) -> None:
    """A float image that overshoots by float rounding (1 + 1e-7) is still a [0, 1] image."""
    v = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    v[0, 0], v[-1, -1] = -1e-7, 1 + 2e-7
    x = io.load_image(_float_tiff(tmp_path, "f.tif", v))
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    np.testing.assert_allclose(x[0, 0].numpy(), np.clip(v, 0, 1))


def test_single_frame_gif_and_reduced_preview_tiff_are_one_image(tmp_path: Path) -> None:
    """Not every multi-IFD file is several images: a TIFF with a reduced-resolution preview page
    is one image, and so is a GIF of one frame."""
    arr = _marked(16, 24)
    p = tmp_path / "preview.tif"
    with tifffile.TiffWriter(p) as tw:
        tw.write(arr, photometric="rgb")
        tw.write(arr[::2, ::2], photometric="rgb", subfiletype=1)
    x = io.load_image(p)
    assert tuple(x.shape) == (1, 3, 16, 24)
    g = tmp_path / "one.gif"
    Image.fromarray(arr).save(g)
    assert tuple(io.load_image(g).shape) == (1, 3, 16, 24)


# ------------------------------------------------------------------------------ integer depths
def _packed_tiff(values: np.ndarray, bps: int) -> bytes:
    """A minimal little-endian uncompressed grey TIFF of ``bps``-bit samples, packed MSB first
    (what scientific cameras write; neither Pillow nor tifffile writes it without imagecodecs)."""
    h, w = values.shape
    bits = np.unpackbits(values.astype(">u2").view(np.uint8).reshape(h, w, 2), axis=-1)[..., 16 - bps:]
    data = b"".join(np.packbits(row.reshape(-1)).tobytes() for row in bits)
    tags = [(256, 3, w), (257, 3, h), (258, 3, bps), (259, 3, 1), (262, 3, 1), (273, 4, 0), (277, 3, 1),
            (278, 3, h), (279, 4, len(data))]
    data_offset = 8 + 2 + 12 * len(tags) + 4
    out = b"II*\x00" + struct.pack("<IH", 8, len(tags))
    for tag, typ, val in tags:
        val = data_offset if tag == 273 else val
        out += struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val))
    return out + struct.pack("<I", 0) + data


@pytest.mark.parametrize("bps", [2, 4, 12])
def test_packed_integer_tiffs_read_at_their_true_scale(tmp_path: Path, bps: int) -> None:
    """Bug caught: a 12-bit TIFF (0..4095) divided by 65535, i.e. read 16 times too dark."""
    values = (np.arange(7 * 9).reshape(7, 9) * 37) % (2**bps)
    values[0, 0] = 2**bps - 1
    p = tmp_path / f"b{bps}.tif"
    p.write_bytes(_packed_tiff(values, bps))
    x, bits = io.load_image(p, return_bits=True)
    assert bits == (8 if bps <= 8 else 16)
    np.testing.assert_allclose(x[0, 0].numpy(), values / (2**bps - 1), atol=1e-6)
    assert float(x.max()) == pytest.approx(1.0)
    assert io.image_info(p).bits == bits


# ------------------------------------------------------------------------------ command line

def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pnpdiff", *args, "--no-progress"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


RECIPE = """image: {image}
operator: {{name: GaussianBlur, sigma: 1.0}}
noise: {{sigma_y: 0.02, seed: 0}}
steps: 2
seed: 0
output: out
"""


@pytest.mark.parametrize("case", ["all_nan", "float_255", "int32", "two_pages", "animated_gif"])
def test_cli_refuses_hostile_image_files(tmp_path: Path, case: str) -> None:
    """Through the CLI: exit 2, one line naming the file, no traceback, nothing written or changed."""
    path, _, words = _hostile(tmp_path)[case]
    (tmp_path / "r.yaml").write_text(RECIPE.format(image=path.name))
    before = _tree(tmp_path)
    r = _cli(tmp_path, "r.yaml")
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("pnpdiff: error:"), r.stderr
    assert path.name in r.stderr and words in r.stderr and "Traceback" not in r.stderr
    assert _tree(tmp_path) == before


def test_cli_restores_a_phone_photo_upright(tmp_path: Path) -> None:
    p, _ = _write_oriented(tmp_path, "jpg", 6)
    (tmp_path / "r.yaml").write_text(RECIPE.format(image=p.name))
    r = _cli(tmp_path, "r.yaml")
    assert r.returncode == 0, r.stderr
    for name in ("restored.png", "observed.png", "ground_truth.png"):
        with Image.open(tmp_path / "out" / name) as im:
            assert im.size == (48, 56), name
