"""Checkpoints: cache directory, model cards, verified downloads and safe loading.

* The cache is ``$PNPDIFF_HOME`` if set, else ``$XDG_CACHE_HOME/pnpdiff``, else
  ``~/.cache/pnpdiff``.
* Every downloadable prior has a :class:`ModelCard` (file name, approximate size, sha256, source
  URL, architecture configuration, licence).
* :func:`resolve_checkpoint` finds a checkpoint: an explicit path, else the cache; it downloads
  only when asked (``download=True`` or ``PNPDIFF_DOWNLOAD=1``) and otherwise fails at once with a
  one-line :class:`~pnpdiff.WeightsNotFoundError` saying what file is missing, where it was looked
  for, where to get it and how to hand it over. It never touches the network unasked.
* :func:`safe_load` verifies the sha256 (when the card knows it) and loads with
  ``torch.load(..., weights_only=True)``, so a pickle carrying code is refused, never executed.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pnpdiff import env
from pnpdiff.errors import ChecksumError, PnPError, WeightsNotFoundError

__all__ = [
    "ModelCard",
    "MODEL_CARDS",
    "cache_dir",
    "sha256_file",
    "verify_checksum",
    "download",
    "resolve_checkpoint",
    "safe_load",
]


def cache_dir() -> Path:
    """Directory holding downloaded checkpoints (not created here).

    ``$PNPDIFF_HOME`` if set, else ``$XDG_CACHE_HOME/pnpdiff``, else ``~/.cache/pnpdiff``.

    Returns
    -------
    pathlib.Path
        The cache directory (it may not exist yet).
    """
    home = env.home()
    if home is not None:
        return home
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "pnpdiff"


@dataclass(frozen=True)
class ModelCard:
    """What pnpdiff knows about a published checkpoint.

    Parameters
    ----------
    name : str
        Registry name (``"ffhq"``).
    filename : str
        File name in the cache.
    url : str
        Direct download URL.
    sha256 : str or None
        Published / recorded sha256 of the file; ``None`` when no trustworthy value is known, in
        which case verification is skipped (a warning is given on download).
    approx_size : str
        Human-readable size, for messages.
    source : str
        Where the checkpoint comes from (paper code release).
    licence : str
        Licence of the weights as stated by their publisher.
    config : dict
        Architecture configuration (:class:`pnpdiff.priors.adm.ADMConfig` fields).
    reference : str
        Paper.
    """

    name: str
    filename: str
    url: str
    sha256: str | None
    approx_size: str
    source: str
    licence: str
    config: dict[str, Any] = field(default_factory=dict)
    reference: str = ""


MODEL_CARDS: dict[str, ModelCard] = {
    "ffhq": ModelCard(
        name="ffhq",
        filename="ffhq_10m.pt",
        # deepinv's mirror of the DPS/DiffPIR FFHQ checkpoint (deepinv.models.DiffUNet source,
        # file "diffusion_ffhq_10m.pt"); the original is distributed through the Google-Drive
        # link of github.com/DPS2022/diffusion-posterior-sampling as "ffhq_10m.pt".
        url="https://huggingface.co/deepinv/diffunet/resolve/main/diffusion_ffhq_10m.pt?download=true",
        sha256=None,  # no published sha256 found; verification skipped
        approx_size="357 MB",
        source="github.com/DPS2022/diffusion-posterior-sampling (configs/model_config.yaml)",
        licence="not stated by the publisher; trained on FFHQ (dataset licence CC BY-NC-SA 4.0)",
        config=dict(
            image_size=256, in_channels=3, model_channels=128, out_channels=6,
            num_res_blocks=1, attention_resolutions=(16,), channel_mult=(1, 1, 2, 2, 4, 4),
            num_heads=4, num_head_channels=64, num_heads_upsample=-1,
            use_scale_shift_norm=True, resblock_updown=True, use_new_attention_order=False,
            learn_sigma=True, beta_start=1e-4, beta_end=0.02, num_timesteps=1000,
        ),
        reference="Chung et al., Diffusion Posterior Sampling for General Noisy Inverse "
        "Problems, ICLR 2023; Zhu et al., DiffPIR, CVPR-W 2023",
    ),
    "imagenet": ModelCard(
        name="imagenet",
        filename="256x256_diffusion_uncond.pt",
        url="https://openaipublic.blob.core.windows.net/diffusion/jul-2021/"
        "256x256_diffusion_uncond.pt",
        sha256=None,  # OpenAI publishes no checksum; verification skipped
        approx_size="2.2 GB",
        source="github.com/openai/guided-diffusion (README, 'Download pre-trained models')",
        licence="MIT (openai/guided-diffusion)",
        config=dict(
            image_size=256, in_channels=3, model_channels=256, out_channels=6,
            num_res_blocks=2, attention_resolutions=(32, 16, 8), channel_mult=(1, 1, 2, 2, 4, 4),
            num_heads=4, num_head_channels=64, num_heads_upsample=-1,
            use_scale_shift_norm=True, resblock_updown=True, use_new_attention_order=False,
            learn_sigma=True, beta_start=1e-4, beta_end=0.02, num_timesteps=1000,
        ),
        reference="Dhariwal and Nichol, Diffusion Models Beat GANs on Image Synthesis, "
        "NeurIPS 2021",
    ),
}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def verify_checksum(path: str | Path, sha256: str | None) -> None:
    """Raise :class:`~pnpdiff.ChecksumError` unless ``path`` has the given sha256.

    ``sha256=None`` skips the check.
    """
    if sha256 is None:
        return
    got = sha256_file(path)
    if got.lower() != sha256.lower():
        raise ChecksumError(
            f"checkpoint {path} has sha256 {got}, expected {sha256}: the file is corrupted, "
            "truncated or not the published one; delete it and download it again"
        )


def _missing_message(card: ModelCard, looked: Path) -> str:
    sha = card.sha256 or "not published (unverified)"
    return (
        f"prior '{card.name}' needs the checkpoint {card.filename} ({card.approx_size}), not found "
        f"at {looked}; download it from {card.url} (sha256: {sha}) and either copy it there or "
        f"pass prior=\"{card.name}:/path/to/{card.filename}\" (set PNPDIFF_HOME to change the "
        f"cache folder, or PNPDIFF_DOWNLOAD=1 to download it automatically when online)"
    )


def _unwritable_message(card: ModelCard, dest: Path, err: OSError) -> str:
    """A cache folder that cannot take the download: which one, why, and what to change."""
    home = env.home()
    named = home is not None and dest.parent == home
    where = f"the checkpoint cache {dest.parent}" + (" (PNPDIFF_HOME)" if named else "")
    return (f"cannot download {card.filename} for prior '{card.name}': {where} cannot be written "
            f"({err.strerror or type(err).__name__}); set PNPDIFF_HOME "
            f"to a folder you can write, or download {card.url} yourself and pass "
            f"prior=\"{card.name}:/path/to/{card.filename}\"")


def download(card: ModelCard, dest: str | Path | None = None, *, progress: bool = True,
             timeout: float = 10.0) -> Path:
    """Download ``card``'s checkpoint into ``dest`` (default: the cache), verifying its sha256.

    The file is written to a temporary name next to ``dest`` and moved into place only once
    complete and verified, so an interrupted download never leaves a half-written checkpoint.

    Raises
    ------
    WeightsNotFoundError
        If the network is unreachable (after at most ``timeout`` seconds without data).
    ChecksumError
        If the downloaded file does not match the card's sha256.
    """
    dest = Path(dest) if dest is not None else cache_dir() / card.filename
    try:  # before the network: a cache that cannot be written fails at once
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{card.filename}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise WeightsNotFoundError(_unwritable_message(card, dest, e)) from None
    tmp = Path(tmp_name)
    try:
        try:
            req = urllib.request.Request(card.url, headers={"User-Agent": "pnpdiff"})
            with urllib.request.urlopen(req, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:
                total = int(resp.headers.get("Content-Length") or 0) or None
                bar = None
                if progress:
                    from tqdm.auto import tqdm

                    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                               desc=card.filename)
                try:
                    while True:
                        buf = resp.read(1 << 20)
                        if not buf:
                            break
                        out.write(buf)
                        if bar is not None:
                            bar.update(len(buf))
                finally:
                    if bar is not None:
                        bar.close()
        except OSError as e:  # URLError, timeouts, connection resets
            raise WeightsNotFoundError(
                _missing_message(card, dest) + f" [download failed: {e}]"
            ) from None
        verify_checksum(tmp, card.sha256)
        if card.sha256 is None:
            import warnings

            warnings.warn(
                f"{card.filename}: no published sha256, the download was not verified "
                f"(sha256 {sha256_file(tmp)})",
                stacklevel=2,
            )
        shutil.move(str(tmp), dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def resolve_checkpoint(card: ModelCard, path: str | Path | None = None, *,
                       download_missing: bool | None = None, progress: bool = True) -> Path:
    """Local path of ``card``'s checkpoint.

    Parameters
    ----------
    card : ModelCard
        The checkpoint's card.
    path : str or Path, optional
        Explicit file (``prior="ffhq:/path/to/ffhq_10m.pt"``); must exist.
    download_missing : bool, optional
        Download into the cache when missing; default from ``$PNPDIFF_DOWNLOAD`` (off). Without
        it the function never touches the network and fails at once.

    Raises
    ------
    WeightsNotFoundError
        One line naming the file, the place looked in, the URL, the sha256 and how to provide it.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(_missing_message(card, p))
        return p
    p = cache_dir() / card.filename
    if p.is_file():
        return p
    if download_missing is None:
        download_missing = env.download()
    if not download_missing:
        raise WeightsNotFoundError(_missing_message(card, p))
    return download(card, p, progress=progress)


def safe_load(path: str | Path, sha256: str | None = None) -> Any:
    """Load a checkpoint safely: check ``sha256`` (if given), ``torch.load(weights_only=True)``.

    A file that is not a plain tensor checkpoint (for example a pickle embedding code) is refused
    with :class:`~pnpdiff.ChecksumError` before anything in it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"checkpoint not found: {path}")
    verify_checksum(path, sha256)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ChecksumError(
            f"refusing to load {path}: it is not a plain weights file (it would need arbitrary "
            f"code to unpickle: {first}); only load checkpoints from a source you trust, "
            "converted to a state dict of tensors"
        ) from None
    except Exception as e:  # truncated / foreign files fail in many ways inside torch.load
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PnPError(f"cannot read checkpoint {path}: not a PyTorch weights file, or a damaged one "
                       f"({type(e).__name__}: {msg[:160]})") from None
