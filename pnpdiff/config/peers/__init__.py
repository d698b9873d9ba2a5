"""Configs of the peer code bases, DPS, DiffPIR and DAPS, read as pnpdiff recipes.

Users arrive with the YAML files of three official code bases:

* **DPS** (Chung et al., "Diffusion Posterior Sampling for General Noisy Inverse Problems",
  ICLR 2023; ``DPS2022/diffusion-posterior-sampling``): the *task* configs of ``configs/`` with
  ``conditioning``, ``data`` and ``measurement``, written with PyYAML's ``!!python/tuple`` tag
  (:mod:`~pnpdiff.config.peers.dps`);
* **DiffPIR** (Zhu et al., "Denoising Diffusion Models for Plug-and-Play Image Restoration",
  CVPR-W 2023; ``yuanzhi-zhu/DiffPIR``): flat YAML files with the variable names of its
  ``main_ddpir*.py`` scripts (``noise_level_img`` on a 0-255 scale, ``iter_num``, ``lambda_``,
  ``zeta``, ``sf``, ...; :mod:`~pnpdiff.config.peers.diffpir`);
* **DAPS** (Zhang et al., "Improving Diffusion Inverse Problem Solving with Decoupled Noise
  Annealing", CVPR 2025; ``zhangbingliang2019/DAPS``): the task configs of ``configs/task/``, one
  group per kind of model with DPS's operator names and ``sigma`` on [-1, 1]
  (:mod:`~pnpdiff.config.peers.daps`).

:func:`load_yaml` reads such a file (``yaml.safe_load`` plus exactly one extra tag,
``!!python/tuple``, under the rules of :mod:`pnpdiff.config.files`), :func:`detect` says which
format it is (naming a code base only when the file's shape is sure, see
:mod:`~pnpdiff.config.peers.detect`) and :func:`translate` turns it into a pnpdiff recipe mapping,
with every unit converted, and a table of what became of each peer key
(:meth:`Translation.table`, printed by ``--dry-run``). Anything that changes the result and that
pnpdiff cannot reproduce is a :class:`~pnpdiff.errors.RecipeError` naming the peer key; keys that
only do bookkeeping (result folders, save flags, logging) are listed as ignored.
``docs/peer_configs.md`` is the published table.

This package is part of the config layer: it imports :mod:`pnpdiff.config.files`, the validator
kit and the schedules, never :mod:`pnpdiff.config.restore` (which imports it). The top-level keys
of a pnpdiff recipe come in as ``recipe_keys`` (:data:`RECIPE_KEYS` when not given).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pnpdiff.config.files import RecipeLoader, load_yaml
from pnpdiff.config.peers.common import RECIPE_KEYS, Row, Translation
from pnpdiff.config.peers.daps import DAPS_OPERATORS, translate_daps
from pnpdiff.config.peers.detect import KINDS, detect
from pnpdiff.config.peers.diffpir import DIFFPIR_KEYS, SCRIPT_SCALING, translate_diffpir
from pnpdiff.config.peers.dps import DPS_KEYS, translate_dps

__all__ = ["PeerLoader", "Row", "Translation", "load_yaml", "detect", "translate", "KINDS", "DPS_KEYS",
           "DIFFPIR_KEYS", "DAPS_OPERATORS", "SCRIPT_SCALING", "RECIPE_KEYS", "TRANSLATORS"]

#: ``yaml.SafeLoader`` that also reads ``!!python/tuple [a, b]`` as a tuple (DPS's configs write
#: shapes and ranges with it); no other ``python/*`` tag is accepted. It is
#: :class:`pnpdiff.config.files.RecipeLoader`, the loader of every recipe.
PeerLoader = RecipeLoader

#: the translator of each kind :func:`detect` returns
TRANSLATORS: dict[str, Callable[[dict[str, Any], Path | None], Translation]] = {
    "dps": translate_dps,
    "diffpir": translate_diffpir,
    "daps": translate_daps,
}


def translate(data: Any, source: Path | None = None, *, recipe_keys: Sequence[str] | None = None) -> Translation | None:
    """Translate a DPS task config, a DiffPIR config or a DAPS task config into a pnpdiff recipe.

    Parameters
    ----------
    data : Any
        The parsed YAML (:func:`load_yaml`).
    source : Path, optional
        The file it came from (named in errors and in the table's title).
    recipe_keys : sequence of str, optional
        The top-level keys of a pnpdiff recipe (``pnpdiff.config.restore.TOP_KEYS``; default
        :data:`RECIPE_KEYS`, the same tuple): a peer config that has one is refused as mixed.

    Returns
    -------
    Translation or None
        None when ``data`` is not a peer config (a pnpdiff recipe, or anything else that
        :func:`pnpdiff.config.restore.parse_recipe` should judge); otherwise the recipe and its table.

    Raises
    ------
    RecipeError
        A peer config that mixes in pnpdiff recipe keys, uses a setting pnpdiff cannot
        reproduce (Poisson noise, a learned blur, another conditioning method, HMC, ...), or has a
        bad value; the message names the peer key path. A file with no pnpdiff recipe key that
        :func:`detect` cannot place, or a peer's config that is not a task (a model, diffusion or
        sampler config), with what pnpdiff could not place or a pointer to the task config.

    Notes
    -----
    A DPS config is recognised by ``measurement`` or ``conditioning``; a DiffPIR config by one of
    DiffPIR's own variable names (``noise_level_img``, ``iter_num``, ``lambda_``, ...); a DAPS task
    config by its task groups (``pixel: {mcmc_sampler_config: ..., operator: ...}``).
    """
    kind = detect(data, source, recipe_keys=recipe_keys)
    if kind is None:
        return None
    return TRANSLATORS[kind](data, source)
