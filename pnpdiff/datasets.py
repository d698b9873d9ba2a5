"""Training data for ``pnpdiff train``: the built-in digits and folders of images.

``digits(split)`` is scikit-learn's 1,797 handwritten 8x8 digits (UCI; 16 grey levels), scaled
to [0, 1] and upsampled to ``size`` (bilinear). ``split="train"`` is the first 1,500 in
scikit-learn's order (what the shipped ``digits`` prior was trained on), ``"heldout"`` the last
297 (never seen in training: the test set of every digits experiment), ``"all"`` all of them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pnpdiff.errors import InputFileError, PnPError, ValueRangeError

__all__ = ["digits", "image_folder", "load_dataset", "DIGITS_TRAIN", "BUILTIN"]

#: the first DIGITS_TRAIN digits are the training split, the rest the held-out split
DIGITS_TRAIN = 1500
BUILTIN = ("digits",)


def digits(split: str = "train", size: int = 16) -> tuple[Tensor, Tensor]:
    """scikit-learn's handwritten digits as ``(N, 1, size, size)`` images in [0, 1] and ``(N,)`` labels.

    Parameters
    ----------
    split : {"train", "heldout", "all"}
        The first 1,500, the last 297, or all 1,797 (scikit-learn's order).
    size : int
        Side of the images (8 = the originals; larger sides are bilinear upsamplings).

    Returns
    -------
    images : Tensor
        ``(N, 1, size, size)`` float32 in [0, 1].
    labels : Tensor
        ``(N,)`` long, the digits 0..9.

    Raises
    ------
    ValueRangeError
        For an unknown ``split`` or ``size < 8``.
    PnPError
        If scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise PnPError("the built-in digits need scikit-learn: pip install scikit-learn") from None
    if split not in ("train", "heldout", "all"):
        raise ValueRangeError(f"digits split must be 'train', 'heldout' or 'all', got {split!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueRangeError(f"digits size must be an integer >= 8, got {size!r}")
    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    y = torch.as_tensor(d.target, dtype=torch.long)
    sl = {"train": slice(0, DIGITS_TRAIN), "heldout": slice(DIGITS_TRAIN, None), "all": slice(None)}[split]
    x, y = x[sl], y[sl]
    if size != 8:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp(0, 1).contiguous(), y


def image_folder(path: str | Path, size: int, channels: int | None = None) -> tuple[Tensor, Tensor | None, list[str]]:
    """Images of a folder, centre-cropped to a square and resized to ``size`` (antialiased).

    A folder whose sub-folders hold the images is labelled by sub-folder (sorted names = class
    names, ImageFolder's convention); a folder of image files is unlabelled.

    Parameters
    ----------
    path : str or Path
        The folder.
    size : int
        Side of the square images returned.
    channels : int, optional
        1 or 3 to convert every image to grey or colour; default the images' own.

    Returns
    -------
    images : Tensor
        ``(N, C, size, size)`` in [0, 1].
    labels : Tensor or None
        ``(N,)`` class indices (sub-folder order), or ``None`` for a flat folder.
    class_names : list of str
        The sub-folder names (empty for a flat folder).

    Raises
    ------
    InputFileError
        If the folder does not exist, holds no images, or mixes channel counts.
    """
    from pnpdiff.io import IMAGE_SUFFIXES, load_image

    root = Path(path).expanduser()
    if not root.is_dir():
        raise InputFileError(f"training data folder {root} does not exist")

    def files(d: Path) -> list[Path]:
        return sorted(e for e in d.iterdir() if e.is_file() and not e.name.startswith(".")
                      and e.suffix.lower() in IMAGE_SUFFIXES)

    subdirs = sorted(e for e in root.iterdir() if e.is_dir() and not e.name.startswith(".") and files(e))
    groups = [(i, files(d)) for i, d in enumerate(subdirs)] if subdirs else [(-1, files(root))]
    names = [d.name for d in subdirs]
    xs, ys = [], []
    for label, fs in groups:
        for f in fs:
            x = load_image(f)
            c = channels or x.shape[0]
            if x.shape[0] != c:
                x = x.mean(0, keepdim=True).expand(c, -1, -1) if c in (1, 3) and x.shape[0] in (1, 3) else x
                if c == 1:
                    x = x[:1]
            h, w = x.shape[-2:]
            s = min(h, w)
            x = x[:, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
            x = torch.nn.functional.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True,
                                                align_corners=False)[0]
            xs.append(x.clamp(0, 1))
            ys.append(label)
    if not xs:
        raise InputFileError(f"training data folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) > 1:
        raise InputFileError(f"training images of {root} mix channel counts {sorted(s[0] for s in shapes)}; "
                             "set channels: 1 or 3")
    labels = torch.tensor(ys) if subdirs else None
    return torch.stack(xs), labels, names


def load_dataset(spec: str, size: int, channels: int | None = None) -> tuple[Tensor, Tensor | None, list[str], str]:
    """``(images, labels or None, class names, description)`` for a recipe's ``data`` value.

    Parameters
    ----------
    spec : str
        ``"digits"`` (the training split) or a folder (see :func:`image_folder`).
    size : int
        Side of the images.
    channels : int, optional
        Channels of a folder's images (see :func:`image_folder`).

    Returns
    -------
    tuple
        ``(images, labels or None, class names, description)``.

    Raises
    ------
    InputFileError
        For a folder that does not exist or holds no usable images.
    """
    if spec == "digits":
        x, y = digits("train", size)
        return x, y, [str(i) for i in range(10)], (f"scikit-learn digits, the first {DIGITS_TRAIN} "
                                                    f"(8x8, bilinear to {size}x{size})")
    x, y, names = image_folder(spec, size, channels)
    return x, y, names, f"{len(x)} images of {spec} ({size}x{size})"
