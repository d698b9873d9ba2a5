"""Which code base's config a parsed YAML file is, named only when the file's shape is sure.

:func:`detect` places a file as a DPS task config, a DiffPIR config or a DAPS task config by keys
that no other format uses together (DPS's ``measurement`` / ``conditioning``; a DiffPIR variable
name of :data:`~pnpdiff.config.peers.diffpir.DIFFPIR_SURE_KEYS`; DAPS's task groups of ``operator``
and ``mcmc_sampler_config``), and returns None for a pnpdiff recipe. Configs of those code bases
that are not tasks (DPS's model and diffusion configs, DAPS's sampler configs) are refused with a
pointer to the task config, naming the code base only when the file has exactly that config's keys.
Anything else that is no pnpdiff recipe is refused with what pnpdiff could not place: a diffusion
model's settings (DDNM's ``hq_demo/confs``, DAPS's model configs, ...) are called that, and no
code base is named.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pnpdiff.config.peers.common import top_keys
from pnpdiff.config.peers.daps import DAPS_OPERATORS
from pnpdiff.config.peers.diffpir import DIFFPIR_KEYS, DIFFPIR_SURE_KEYS
from pnpdiff.config.peers.dps import DPS_KEYS
from pnpdiff.errors import RecipeError

__all__ = ["detect", "KINDS", "DPS_MODEL_CONFIG_KEYS", "DPS_DIFFUSION_CONFIG_KEYS", "DAPS_SAMPLER_KEYS"]

#: what :func:`detect` returns for a peer config it places
KINDS = ("dps", "diffpir", "daps")

#: every key of DPS's ``configs/model_config.yaml`` and ``imagenet_model_config.yaml`` (--model_config)
DPS_MODEL_CONFIG_KEYS = frozenset((
    "image_size", "num_channels", "num_res_blocks", "channel_mult", "learn_sigma", "class_cond", "use_checkpoint",
    "attention_resolutions", "num_heads", "num_head_channels", "num_heads_upsample", "use_scale_shift_norm",
    "dropout", "resblock_updown", "use_fp16", "use_new_attention_order", "model_path",
))
#: every key of DPS's ``configs/diffusion_config.yaml`` (--diffusion_config)
DPS_DIFFUSION_CONFIG_KEYS = frozenset((
    "sampler", "steps", "noise_schedule", "model_mean_type", "model_var_type", "dynamic_threshold", "clip_denoised",
    "rescale_timesteps", "timestep_respacing",
))
#: every key of DAPS's sampler configs: ``configs/sampler/*.yaml``, and the older ``config/sampler/*.yaml``
DAPS_SAMPLER_KEYS = frozenset(("latent", "annealing_scheduler_config", "diffusion_scheduler_config"))
_DAPS_OLD_SAMPLER_KEYS = frozenset(("latent", "num_steps", "solver", "sigma_max", "sigma_min", "sigma_final",
                                    "scheduler", "timestep"))
#: guided-diffusion UNet arguments: two of them make a file (or one of its mappings) a model's settings
_MODEL_ARGS = ("model_path", "num_channels", "num_res_blocks", "attention_resolutions", "learn_sigma", "channel_mult",
               "num_head_channels", "resblock_updown", "use_scale_shift_norm")
#: the keys of DPS's model config that make a file of its keys one (the others are UNet flags)
_DPS_MODEL_SIGNS = frozenset(("model_path", "num_channels", "num_res_blocks", "learn_sigma", "attention_resolutions"))
#: keys a DiffPIR config shares with a pnpdiff recipe (they do not make a config "mixed")
_SHARED_WITH_PNPDIFF = ("task", "seed", "batch_size")


def _is_daps_group(v: Any) -> bool:
    """A DAPS task group: ``{mcmc_sampler_config: ..., operator: {name: <a DAPS operator>, ...}}``."""
    if not isinstance(v, dict):
        return False
    op = v.get("operator")
    return "mcmc_sampler_config" in v or (isinstance(op, dict) and op.get("name") in DAPS_OPERATORS)


def _is_daps_task(data: dict[str, Any]) -> bool:
    if any(_is_daps_group(v) for v in data.values()):
        return True
    if "likelihood_estimator_config" in data:  # the older layout of config/task/*.yaml
        return True
    op = data.get("operator")
    return (set(data) == {"operator"} and isinstance(op, dict) and op.get("name") in DAPS_OPERATORS
            and "sigma" in op)


def _model_args(data: dict[str, Any]) -> list[str]:
    """The UNet arguments of ``data`` (or of one of its mappings, ``model_config: {...}``), if two or more."""
    for node in (data, *(v for v in data.values() if isinstance(v, dict))):
        found = [k for k in _MODEL_ARGS if k in node]
        if len(found) >= 2:
            return found
    return []


def _shown(keys: Sequence[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def detect(data: Any, source: Path | None = None, *, recipe_keys: Sequence[str] | None = None) -> str | None:
    """The kind of peer config ``data`` is: ``"dps"``, ``"diffpir"`` or ``"daps"``, or None.

    Parameters
    ----------
    data : Any
        The parsed YAML of a recipe file.
    source : Path, optional
        The file it came from (named in errors).
    recipe_keys : sequence of str, optional
        The top-level keys of a pnpdiff recipe (default
        :data:`~pnpdiff.config.peers.common.RECIPE_KEYS`).

    Returns
    -------
    str or None
        The kind, or None for a pnpdiff recipe (or anything that is not a mapping of names):
        :func:`pnpdiff.config.restore.parse_recipe` judges those.

    Raises
    ------
    RecipeError
        A peer config that mixes in pnpdiff recipe keys; a config of a peer that is not a task
        (DPS's model or diffusion config, DAPS's sampler config), with a pointer to the task config;
        a file that has no pnpdiff recipe key and that pnpdiff cannot place (the message says what
        it found, and names no code base).
    """
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) for k in data):
        return None
    ours = top_keys(recipe_keys)
    where = f"{source}: " if source is not None else ""
    if "measurement" in data or "conditioning" in data:
        mixed = [k for k in data if k in ours]
        if mixed:
            raise RecipeError(
                f"{where}{mixed[0]}: a pnpdiff recipe key in a DPS task config (it has "
                f"{', '.join(k for k in DPS_KEYS if k in data)}); write either a DPS config or a pnpdiff "
                f"recipe, and change pnpdiff keys on the command line instead (e.g. {mixed[0]}=...)"
            )
        return "dps"
    if _is_daps_task(data):
        old = "likelihood_estimator_config" in data
        mixed = [k for k in data if k in ours and not (old and k == "operator")]
        if mixed:
            groups = [k for k in data if _is_daps_group(data[k])] or ["likelihood_estimator_config", "operator"]
            raise RecipeError(
                f"{where}{mixed[0]}: a pnpdiff recipe key in a DAPS task config (it has {', '.join(groups[:3])}); "
                f"write either a DAPS config or a pnpdiff recipe, and change pnpdiff keys on the command line "
                f"instead (e.g. {mixed[0]}=...)"
            )
        return "daps"
    if any(k in DIFFPIR_SURE_KEYS for k in data):
        peer = [k for k in data if k in DIFFPIR_KEYS and k not in _SHARED_WITH_PNPDIFF]
        mixed = [k for k in data if k in ours and k not in _SHARED_WITH_PNPDIFF]
        if mixed:
            raise RecipeError(
                f"{where}{mixed[0]}: a pnpdiff recipe key in a DiffPIR config (it has {', '.join(peer[:3])}); "
                f"write either a DiffPIR config or a pnpdiff recipe, and change pnpdiff keys on the command "
                f"line instead (e.g. {mixed[0]}=...)"
            )
        return "diffpir"
    keys = set(data)
    if keys <= DPS_MODEL_CONFIG_KEYS and keys & _DPS_MODEL_SIGNS:
        raise RecipeError(
            f"{where}this is a DPS model config (--model_config), not a task: run the task config "
            "(configs/*_config.yaml with measurement: and conditioning:) and choose the model with "
            "prior=ffhq (or prior=ffhq:/path/to/ffhq_10m.pt)"
        )
    if keys <= DPS_DIFFUSION_CONFIG_KEYS and keys - {"steps"}:
        raise RecipeError(
            f"{where}this is a DPS diffusion config (--diffusion_config), not a task: run the task config "
            "(configs/*_config.yaml); pnpdiff's number of steps is steps=N"
        )
    if (keys <= DAPS_SAMPLER_KEYS and "annealing_scheduler_config" in keys) or (
        keys <= _DAPS_OLD_SAMPLER_KEYS and data.get("solver") == "daps"
    ):
        raise RecipeError(
            f"{where}this is a DAPS sampler config (sampler=...), not a task: run the task config "
            "(configs/task/*.yaml); pnpdiff's annealing is steps=N with options.schedule_max and "
            "options.schedule_min (DAPS's sigma_max 100 and sigma_min 0.1 on [-1, 1] are 50 and 0.05 here) and "
            "its ODE options.ode_steps=N"
        )
    if any(k in ours for k in data):
        return None  # a pnpdiff recipe: parse_recipe names any unknown key
    found = _model_args(data)
    if found:
        raise RecipeError(
            f"{where}this looks like a diffusion model's settings (it has {', '.join(found)}), not a task: pnpdiff "
            "could not place it as a DPS task config, a DiffPIR config or a DAPS task config. Run a task config or "
            "a pnpdiff recipe and choose the model with prior=ffhq, prior=imagenet or prior=ffhq:/path/to/model.pt "
            "(docs/peer_configs.md)"
        )
    raise RecipeError(
        f"{where}pnpdiff could not place this file: it is not a pnpdiff recipe (none of its keys, "
        f"{_shown(list(data))}, is a recipe key: {', '.join(ours)}), nor a DPS task config (measurement, "
        "conditioning), a DiffPIR config (noise_level_img, iter_num, lambda_, ...) or a DAPS task config "
        "(task groups of operator and mcmc_sampler_config); docs/peer_configs.md lists the configs pnpdiff reads"
    )
