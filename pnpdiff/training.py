"""Training a prior (``pnpdiff train``) and a noise-conditional classifier (``pnpdiff train-classifier``).

The prior is trained by denoising score matching (Ho et al. 2020, Algorithm 1; Karras et al.
2022, Sec. 5): draw a clean image ``x0``, a noise level ``sigma`` and ``n ~ N(0, I)``, and regress
the denoiser ``D(x0 + sigma n, sigma)`` onto ``x0`` with a sigma-dependent weight ``lambda``:

* ``prediction: edm`` -- EDM's preconditioned ``F`` (see :mod:`pnpdiff.priors.trained`),
  ``lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2`` (unit-variance target);
* ``prediction: x0`` -- ``lambda = 1 / sigma_data^2``;
* ``prediction: eps`` -- ``lambda = 1 / sigma^2``, i.e. DDPM's ``||eps - eps_theta||^2``.

Noise levels: ``sigma_sampling: edm`` draws ``ln(2 sigma) ~ N(-1.2, 1.2^2)`` (EDM's log-normal,
in [-1, 1] units, halved into pnpdiff's); ``sigma_sampling: ddpm`` draws ``t`` uniformly from
1..1000 on DDPM's linear beta table and uses its ``sigma_t = sqrt((1 - abar_t) / abar_t) / 2``.
Both are clipped to ``[sigma_min, sigma_max]``. Class labels (when the data have them) are
replaced by the null label with probability ``label_dropout`` (classifier-free guidance, Ho and
Salimans 2021). AdamW with a linear warm-up, gradient clipping, an exponential moving average of
the weights (what the prior uses), bfloat16 autocast on CUDA (``amp``), seeded and reproducible:
the data order, labels dropped, noise levels and noise all come from one CPU generator whose
state is saved in every checkpoint, so a resumed run ends with the same weights as an
uninterrupted one.

Output folder (every file recorded in pnpdiff's manifest; a user's file is never replaced)::

    OUTPUT/prior.pt          the EMA network and its model card: load_prior("trained:OUTPUT/prior.pt")
    OUTPUT/model_card.yaml   the card, for people
    OUTPUT/checkpoint.pt     everything needed to resume (weights, EMA, optimiser, generator, step)
    OUTPUT/train_log.csv     step, loss (mean since the last row), learning rate, seconds
    OUTPUT/samples-STEP.png  a grid of samples every ``sample_every`` steps (one row per class)
"""

from __future__ import annotations

import copy
import csv
import io as _io
import math
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from pnpdiff.errors import OutputFolderError, PnPError, RecipeError
from pnpdiff.outputs import OutputFolder
from pnpdiff.priors.trained import (
    CLASSIFIER_FORMAT,
    PREDICTIONS,
    PRIOR_FORMAT,
    TrainedClassifier,
    TrainedPrior,
    preconditioning,
)
from pnpdiff.unet import NoiseClassifier, SmallUNet, UNetConfig

__all__ = ["TrainConfig", "train", "train_classifier", "load_train_recipe", "SIGMA_SAMPLINGS"]

SIGMA_SAMPLINGS = ("edm", "ddpm")
#: the most optimiser steps (and ``warmup``, ``*_every``) a training recipe accepts
MAX_TRAIN_STEPS = 10**9
_TRAIN_FORMAT = "pnpdiff-train/1"


@dataclass
class TrainConfig:
    """Settings of a training run (the keys of ``recipes/train_digits.yaml``; see :func:`train`).

    Parameters
    ----------
    data : str
        ``"digits"`` (built in) or a folder of images (sub-folders = classes).
    size : int
        Side the images are resized to (``>= 4``).
    channels : int, optional
        Image channels; default those of the data.
    conditional : bool
        Use the class labels (when the data have them).
    label_dropout : float
        Probability of replacing a label by the null label (classifier-free guidance), in [0, 1].
    model : dict
        :class:`~pnpdiff.unet.UNetConfig` fields (``base``, ``mult``, ``blocks``, ``attention``,
        ``emb``, ``dropout``).
    prediction : {"edm", "x0", "eps"}
        What the network predicts (see the module docstring for the loss weights).
    sigma_sampling : {"edm", "ddpm"}
        How training noise levels are drawn: EDM's log-normal or DDPM's uniform ``t``.
    sigma_min, sigma_max : float
        Range of the noise levels, ``0 < sigma_min < sigma_max``, in [0, 1] units.
    steps : int
        Optimiser steps.
    batch_size : int
        Images per step.
    lr, weight_decay : float
        AdamW learning rate (``> 0``) and weight decay (``>= 0``).
    warmup : int
        Steps of linear learning-rate warm-up.
    ema : float
        Decay of the exponential moving average of the weights, in [0, 1].
    grad_clip : float
        Gradient-norm clip (0: none).
    amp : bool
        bfloat16 autocast on CUDA.
    seed : int
        Seed of the one CPU generator behind data order, labels, noise levels and noise.
    checkpoint_every, sample_every, log_every : int
        Steps between checkpoints, sample grids (0: none) and log rows.
    output : str
        Output folder.
    name : str
        Name recorded in the model card.
    device : str, optional
        Default: CUDA when available.
    resume : bool
        Continue from ``output/checkpoint.pt``.
    overwrite : bool
        Replace a previous run's files in ``output`` (never a user's).
    task : str
        ``"train"`` or ``"train-classifier"`` (the CLI command of the recipe).
    description : str
        Free text, recorded in the model card.
    command : str
        The command line that reproduces the run (filled in by :func:`load_train_recipe`).
    """

    data: str = "digits"
    size: int = 16
    channels: int | None = None
    conditional: bool = True
    label_dropout: float = 0.1
    model: dict[str, Any] = field(default_factory=dict)
    prediction: str = "edm"
    sigma_sampling: str = "edm"
    sigma_min: float = 0.001
    sigma_max: float = 40.0
    steps: int = 8000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: int = 200
    ema: float = 0.999
    grad_clip: float = 1.0
    amp: bool = True
    seed: int = 0
    checkpoint_every: int = 1000
    sample_every: int = 2000
    log_every: int = 50
    output: str = "outputs/train"
    name: str = "trained"
    device: str | None = None
    resume: bool = False
    overwrite: bool = False
    task: str = "train"
    description: str = ""
    command: str = ""

    def validate(self, where: str = "") -> TrainConfig:
        """Check every field and normalise the numbers; raise on the first bad one.

        Parameters
        ----------
        where : str
            Prefix of the error messages (e.g. the recipe's path).

        Returns
        -------
        TrainConfig
            ``self``, with numbers converted to ``float`` where a float is expected.

        Raises
        ------
        RecipeError
            For a value out of range or of the wrong type (the message names the key).
        """
        def fail(key: str, msg: str) -> RecipeError:
            return RecipeError(f"{where}{key}: {msg}")

        def integer(key: str, minimum: int, maximum: int) -> None:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum:
                raise fail(key, f"expected an integer >= {minimum} and <= {maximum}, got {v!r}")

        def real(key: str, lo: float, hi: float = math.inf, open_lo: bool = False) -> None:
            v = getattr(self, key)
            ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(float(v))
            if not ok or float(v) < lo or float(v) > hi or (open_lo and float(v) == lo):
                rng = f"in ({lo:g}, {hi:g}]" if open_lo else (f"in [{lo:g}, {hi:g}]" if hi < math.inf else f">= {lo:g}")
                raise fail(key, f"expected a number {rng}, got {v!r}")
            setattr(self, key, float(v))

        from pnpdiff.api import MAX_COUNT, MAX_SEED, MAX_SIDE

        # optimiser steps are not schedule steps: a long training run is legitimate (MAX_TRAIN_STEPS)
        for key, minimum, maximum in (("size", 4, MAX_SIDE), ("steps", 1, MAX_TRAIN_STEPS),
                                      ("batch_size", 1, MAX_COUNT), ("warmup", 0, MAX_TRAIN_STEPS),
                                      ("seed", 0, MAX_SEED), ("checkpoint_every", 1, MAX_TRAIN_STEPS),
                                      ("sample_every", 0, MAX_TRAIN_STEPS), ("log_every", 1, MAX_TRAIN_STEPS)):
            integer(key, minimum, maximum)
        if self.channels is not None:
            integer("channels", 1, 4096)
        real("label_dropout", 0.0, 1.0)
        real("lr", 0.0, open_lo=True)
        real("weight_decay", 0.0)
        real("ema", 0.0, 1.0)
        real("grad_clip", 0.0)
        real("sigma_min", 0.0, open_lo=True)
        real("sigma_max", 0.0, open_lo=True)
        if self.sigma_min >= self.sigma_max:
            raise fail("sigma_min", f"must be below sigma_max ({self.sigma_max:g}), got {self.sigma_min:g}")
        for key in ("conditional", "amp", "resume", "overwrite"):
            if not isinstance(getattr(self, key), bool):
                raise fail(key, f"expected true or false, got {getattr(self, key)!r}")
        if self.prediction not in PREDICTIONS:
            raise fail("prediction", f"expected one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")
        if self.sigma_sampling not in SIGMA_SAMPLINGS:
            raise fail("sigma_sampling", f"expected one of {', '.join(SIGMA_SAMPLINGS)}, got {self.sigma_sampling!r}")
        for key in ("data", "output", "name"):
            v = getattr(self, key)
            if not isinstance(v, str) or not v.strip():
                raise fail(key, f"expected a non-empty string, got {v!r}")
        if not isinstance(self.model, Mapping):
            raise fail("model", f"expected a mapping like {{base: 32, mult: [1, 2, 2]}}, got {self.model!r}")
        try:
            UNetConfig.from_dict({"channels": 1, **{k: v for k, v in self.model.items() if k != "classes"}})
        except PnPError as err:
            raise RecipeError(f"{where}{err}") from None
        return self


_FIELDS = set(TrainConfig.__dataclass_fields__)
_PATH_KEYS = ("data", "output")


def load_train_recipe(path: str | os.PathLike, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a training recipe (YAML) with command-line ``KEY=VALUE`` overrides.

    Relative ``data`` (a folder) and ``output`` paths in the file are relative to the file;
    on the command line, to the current directory.

    Parameters
    ----------
    path : str or os.PathLike
        The YAML recipe.
    overrides : sequence of str
        ``"KEY=VALUE"`` strings, applied on top of the file.

    Returns
    -------
    TrainConfig
        The validated settings.

    Raises
    ------
    RecipeError
        If the file is missing, not valid YAML, or has an unknown key or a bad value.
    """
    from pnpdiff.recipes import apply_overrides
    from pnpdiff.yamlfile import read_yaml_file

    p = Path(path)
    where = f"{p}: "
    if not p.is_file():
        raise RecipeError(f"recipe {p} does not exist")
    data = read_yaml_file(p) or {}  # the one recipe loader: limits, 1e-2 floats, no duplicate key
    if not isinstance(data, dict):
        raise RecipeError(f"{where}a recipe is a mapping of keys to values")
    for key in _PATH_KEYS:
        v = data.get(key)
        if isinstance(v, str) and v not in ("digits",) and not Path(v).expanduser().is_absolute():
            data[key] = str((p.parent / v).resolve())
    data = apply_overrides(data, list(overrides), where)
    for key in _PATH_KEYS:  # overrides of paths: relative to the current directory
        for item in overrides:
            k, _, v = item.partition("=")
            if k.strip() == key and v.strip() and v.strip() != "digits":
                data[key] = str(Path(v.strip()).expanduser().resolve())
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise RecipeError(f"{where}unknown key(s) {', '.join(unknown)}; training recipes take: "
                          f"{', '.join(sorted(_FIELDS - {'command'}))}")
    cfg = TrainConfig(**data)
    cfg.command = " ".join(shlex.quote(a) for a in ["python", "-m", "pnpdiff", cfg.task, str(path), *overrides])
    return cfg.validate(where)


# ---------------------------------------------------------------------- pieces
def _ddpm_sigmas() -> Tensor:
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    return ((1 - abar) / abar).sqrt() / 2  # pnpdiff units: half the [-1, 1] sigma


def draw_sigma(cfg: TrainConfig, n: int, gen: torch.Generator) -> Tensor:
    """Noise levels of one batch, ``(n,)`` float32 on the CPU (see the module docstring)."""
    if cfg.sigma_sampling == "edm":
        s = torch.exp(-1.2 + 1.2 * torch.randn(n, generator=gen, dtype=torch.float64)) / 2
    else:
        s = _ddpm_sigmas()[torch.randint(0, 1000, (n,), generator=gen)]
    return s.clamp(cfg.sigma_min, cfg.sigma_max).float()


def loss_weight(prediction: str, sigma: Tensor, sigma_data: float) -> Tensor:
    """``lambda(sigma)`` of the denoising loss ``lambda ||D - x0||^2`` for each parameterisation."""
    if prediction == "edm":
        return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    if prediction == "x0":
        return torch.full_like(sigma, 1 / sigma_data**2)
    return 1 / sigma**2


def _device(cfg: TrainConfig) -> torch.device:
    from pnpdiff.api import _device as resolve

    return resolve(cfg.device, torch.zeros(()))


def _autocast(cfg: TrainConfig, device: torch.device):  # noqa: ANN202
    if cfg.amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    import contextlib

    return contextlib.nullcontext()


def _ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float, step: int) -> None:
    d = min(decay, (1 + step) / (10 + step))  # warm-up of the average (as in common DDPM code)
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), net.parameters()):
            pe.lerp_(p.detach(), 1 - d)
        for be, b in zip(ema.buffers(), net.buffers()):
            be.copy_(b)


def _grid(x: Tensor, rows: int) -> Tensor:
    """``(N, C, H, W)`` -> one ``(C, rows (H + 1) - 1, cols (W + 1) - 1)`` image with 1-px white gaps."""
    n, c, h, w = x.shape
    cols = math.ceil(n / rows)
    out = torch.ones(c, rows * (h + 1) - 1, cols * (w + 1) - 1)
    for i in range(n):
        r, k = divmod(i, cols)
        out[:, r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = x[i].float().cpu()
    return out


def _card_yaml(card: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(card), sort_keys=False, default_flow_style=None)


def _save(obj: Any, path: Path) -> None:
    buf = _io.BytesIO()
    torch.save(obj, buf)
    path.write_bytes(buf.getvalue())


def _stats(x: Tensor) -> tuple[list[float], list[float], float]:
    mean = x.mean(dim=(0, 2, 3))
    var = x.var(dim=(0, 2, 3), unbiased=False)
    return [float(v) for v in mean], [float(v) for v in var], float(var.mean().sqrt())


class _Run:
    """What train() and train_classifier() share: data, output folder, checkpoints, logging."""

    def __init__(self, cfg: TrainConfig, kind: str, progress: bool) -> None:
        from pnpdiff.datasets import load_dataset

        self.cfg, self.kind, self.progress = cfg, kind, progress
        self.device = _device(cfg)
        self.x, labels, self.class_names, self.data_desc = load_dataset(cfg.data, cfg.size, cfg.channels)
        if kind == "classifier" and labels is None:
            raise PnPError(f"training a classifier needs labelled data: {cfg.data} has no classes "
                           "(put the images of each class in a sub-folder)")
        self.labels = labels if (cfg.conditional or kind == "classifier") else None
        self.classes = len(self.class_names) if self.labels is not None else 0
        self.data_mean, self.data_var, self.sigma_data = _stats(self.x)
        self.out = Path(cfg.output)
        names = ["checkpoint.pt", "train_log.csv", "model_card.yaml",
                 "prior.pt" if kind == "prior" else "classifier.pt"]
        if kind == "prior" and cfg.sample_every:
            names += [f"samples-{s:06d}.png" for s in range(cfg.sample_every, cfg.steps + 1, cfg.sample_every)]
            names.append(f"samples-{cfg.steps:06d}.png")
        self.folder = OutputFolder(self.out, names, overwrite=cfg.overwrite)
        self.log_rows: list[list[Any]] = []

    def commit(self, files: Mapping[str, Any]) -> None:
        with self.folder.transaction() as tmp:
            for name, content in files.items():
                if isinstance(content, (bytes, str)):
                    (tmp / name).write_bytes(content.encode() if isinstance(content, str) else content)
                elif isinstance(content, Tensor):  # an image
                    from pnpdiff.io import save_image

                    save_image(content, tmp / name)
                else:
                    _save(content, tmp / name)

    def log_csv(self) -> str:
        buf = _io.StringIO()
        w = csv.writer(buf)
        w.writerow(["step", "loss", "lr", "seconds"])
        w.writerows(self.log_rows)
        return buf.getvalue()

    def load_checkpoint(self) -> dict[str, Any] | None:
        if not self.cfg.resume:
            return None
        p = self.out / "checkpoint.pt"
        if not p.is_file():
            raise OutputFolderError(f"resume: {p} does not exist (start without resume=true)")
        try:
            ck = torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001
            raise PnPError(f"resume: {p} is not a readable checkpoint") from None
        if not isinstance(ck, dict) or ck.get("format") != _TRAIN_FORMAT or ck.get("kind") != self.kind:
            raise PnPError(f"resume: {p} is not a pnpdiff {self.kind} training checkpoint")
        mine, theirs = _fingerprint(self.cfg), ck.get("fingerprint")
        if mine != theirs:
            diff = sorted(k for k in set(mine) | set(theirs or {}) if (theirs or {}).get(k) != mine.get(k))
            raise PnPError(f"resume: the checkpoint in {self.out} was trained with other settings "
                           f"({', '.join(diff)}); resume with the same recipe, or choose another output")
        if int(ck["step"]) > self.cfg.steps:
            raise PnPError(f"resume: the checkpoint is at step {ck['step']}, beyond steps={self.cfg.steps}")
        return ck

    def bar(self, start: int) -> None:
        """Start the clock, the loss average and (with ``progress``) the progress bar."""
        self.t0, self.acc, self.count, self._bar = time.perf_counter(), 0.0, 0, None
        if self.progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.cfg.steps, initial=start, desc=f"train {self.kind}", leave=False,
                             file=sys.stderr)

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def setup(self, build: Any) -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer,
                                          torch.Generator, int]:
        """Seeded network (``build()``), its EMA copy, AdamW, the data generator and the first step
        (restored from the checkpoint with ``resume``)."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        net = build().to(self.device)
        ema = copy.deepcopy(net).requires_grad_(False)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        start = 0
        ck = self.load_checkpoint()
        if ck is not None:
            net.load_state_dict(ck["net"])
            ema.load_state_dict(ck["ema"])
            opt.load_state_dict(ck["opt"])
            gen.set_state(ck["generator"])
            self.log_rows = [list(r) for r in ck.get("log", [])]
            start = int(ck["step"])
        return net, ema, opt, gen, start

    def checkpoint_files(self, net: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer,
                         gen: torch.Generator, done: int, card: dict[str, Any]) -> dict[str, Any]:
        """The files of a checkpoint: the resumable state, the model file (EMA weights + card), the
        card as YAML and the log. The model file is ``prior.pt`` or ``classifier.pt`` by ``kind``."""
        fmt = PRIOR_FORMAT if self.kind == "prior" else CLASSIFIER_FORMAT
        model = {"format": fmt, "card": card, "state_dict": {k: v.detach().cpu() for k, v in ema.state_dict().items()}}
        state = {"format": _TRAIN_FORMAT, "kind": self.kind, "step": done, "fingerprint": _fingerprint(self.cfg),
                 "net": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                 "generator": gen.get_state(), "log": self.log_rows, self.kind: model}
        return {"checkpoint.pt": state, f"{self.kind}.pt": model, "model_card.yaml": _card_yaml(card),
                "train_log.csv": self.log_csv()}

    def lr(self, step: int) -> float:
        """Learning rate of (0-based) step ``step``: linear warm-up to ``lr``."""
        return self.cfg.lr * min(1.0, (step + 1) / max(self.cfg.warmup, 1))

    def warm_up(self, opt: torch.optim.Optimizer, step: int) -> None:
        for group in opt.param_groups:
            group["lr"] = self.lr(step)

    def update(self, net: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer, loss: Tensor,
               step: int) -> int:
        """One optimiser step on ``loss`` (clipped), the EMA, the progress bar and the log; returns
        the number of steps done."""
        cfg = self.cfg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        _ema_update(ema, net, cfg.ema, step)
        value = float(loss.detach())
        self.acc, self.count = self.acc + value, self.count + 1
        done = step + 1
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{value:.4f}")
        if done % cfg.log_every == 0 or done == cfg.steps:
            self.log_rows.append([done, round(self.acc / self.count, 6), self.lr(step),
                                  round(time.perf_counter() - self.t0, 2)])
            self.acc, self.count = 0.0, 0
        return done


def _fingerprint(cfg: TrainConfig) -> dict[str, Any]:
    """Settings a resumed run must share with the checkpoint (steps and the reporting may change)."""
    skip = {"steps", "checkpoint_every", "sample_every", "log_every", "output", "device", "resume", "overwrite",
            "description", "command", "amp"}
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in vars(cfg).items() if k not in skip}


def _net_config(cfg: TrainConfig, channels: int, classes: int) -> UNetConfig:
    return UNetConfig.from_dict({**dict(cfg.model), "channels": channels, "classes": classes})


def _prior_card(cfg: TrainConfig, run: _Run, net_cfg: UNetConfig, step: int) -> dict[str, Any]:
    from pnpdiff import __version__

    c = run.x.shape[1]
    return {
        "name": cfg.name,
        "architecture": "pnpdiff.unet.SmallUNet",
        "model": net_cfg.to_dict(),
        "parameters": None,
        "prediction": cfg.prediction,
        "sigma_sampling": cfg.sigma_sampling,
        "sigma_data": run.sigma_data,
        "sigma_min": cfg.sigma_min,
        "sigma_max": cfg.sigma_max,
        "data_range": [0.0, 1.0],
        "data_mean": run.data_mean,
        "data_var": run.data_var,
        "channels": c,
        "size": [cfg.size, cfg.size],
        "classes": run.classes,
        "class_names": run.class_names if run.classes else [],
        "label_dropout": cfg.label_dropout if run.classes else 0.0,
        "data": run.data_desc,
        "images": int(run.x.shape[0]),
        "steps": step,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "ema": cfg.ema,
        "seed": cfg.seed,
        "command": cfg.command,
        "pnpdiff": __version__,
        "torch": str(torch.__version__),
    }


def _sample_grid(prior: TrainedPrior, classes: int, seed: int, device: torch.device) -> Tensor:
    from pnpdiff.guidance import GuidedPrior
    from pnpdiff.schedules import karras
    from pnpdiff.solvers import heun

    per = 8
    n = per * max(classes, 1)
    g = torch.Generator(device="cpu").manual_seed(seed)
    shape = (n, prior.channels, *prior.size)
    x_T = prior.start(shape, prior.sigma_max, g).to(device)
    model: Any = prior
    if classes:
        labels = torch.arange(classes).repeat_interleave(per).to(device)
        model = GuidedPrior(prior, label=labels, cfg=1.0)
    sig = karras(18, sigma_min=prior.sigma_min, sigma_max=prior.sigma_max)
    return _grid(heun(model, sig, x_T).clamp(0, 1), rows=max(classes, 1))


def train(config: TrainConfig | Mapping[str, Any] | str | os.PathLike | None = None, /, *,
          progress: bool = False, **settings: Any) -> TrainedPrior:
    """Train a diffusion prior by denoising score matching and write it to ``output``.

    Parameters
    ----------
    config : TrainConfig, mapping, or path of a YAML training recipe, optional
        The settings (:class:`TrainConfig` fields; ``recipes/train_digits.yaml`` shows them all).
    progress : bool
        Show a progress bar with the loss.
    **settings
        Fields that override ``config`` (e.g. ``steps=20, output="runs/try"``).

    Returns
    -------
    TrainedPrior
        The prior (EMA weights), also saved as ``output/prior.pt``:
        ``load_prior("trained:" + output + "/prior.pt")``.

    References
    ----------
    J. Ho, A. Jain and P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    https://arxiv.org/abs/2006.11239 (Algorithm 1)

    T. Karras, M. Aittala, T. Aila and S. Laine, "Elucidating the Design Space of
    Diffusion-Based Generative Models", NeurIPS 2022. https://arxiv.org/abs/2206.00364
    (preconditioning, log-normal sigma)

    J. Ho and T. Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 Workshop on Deep
    Generative Models and Downstream Applications. https://arxiv.org/abs/2207.12598 (label dropout)
    """
    cfg = _config(config, settings)
    run = _Run(cfg, "prior", progress)
    with run.folder.hold():  # locked against another run and checked, before any work
        return _train_prior(cfg, run)


def _train_prior(cfg: TrainConfig, run: _Run) -> TrainedPrior:
    """The training loop of :func:`train`, run while the output folder is held."""
    net_cfg = _net_config(cfg, run.x.shape[1], run.classes)
    net, ema, opt, gen, start = run.setup(lambda: SmallUNet(net_cfg))
    x_all = run.x.to(run.device)
    lab_all = run.labels.to(run.device) if run.labels is not None else None
    sd = run.sigma_data
    mean = torch.tensor(run.data_mean, device=run.device).view(1, -1, 1, 1)
    shadow = TrainedPrior(ema, _prior_card(cfg, run, net_cfg, start))
    run.bar(start)
    for step in range(start, cfg.steps):
        idx = torch.randint(0, x_all.shape[0], (cfg.batch_size,), generator=gen)
        sigma = draw_sigma(cfg, cfg.batch_size, gen)
        noise = torch.randn((cfg.batch_size, *x_all.shape[1:]), generator=gen)
        drop = torch.rand(cfg.batch_size, generator=gen) < cfg.label_dropout
        x0 = x_all[idx.to(run.device)]
        s = sigma.to(run.device).view(-1, 1, 1, 1)
        x = x0 + s * noise.to(run.device)
        label = None
        if lab_all is not None:
            label = torch.where(drop.to(run.device), torch.full_like(lab_all[idx.to(run.device)], run.classes),
                                lab_all[idx.to(run.device)])
        c_skip, c_out, c_in, c_noise = preconditioning(s, sd)
        run.warm_up(opt, step)
        with _autocast(cfg, run.device):
            F = net(c_in * (x - mean), c_noise, label).float()
        if cfg.prediction == "edm":
            d = mean + c_skip * (x - mean) + c_out * F
        elif cfg.prediction == "x0":
            d = mean + sd * F
        else:
            d = x - s * F
        loss = (loss_weight(cfg.prediction, s, sd) * (d - x0) ** 2).mean()
        done = run.update(net, ema, opt, loss, step)
        files: dict[str, Any] = {}
        if cfg.sample_every and (done % cfg.sample_every == 0 or done == cfg.steps):
            shadow.card = _prior_card(cfg, run, net_cfg, done)
            files[f"samples-{done:06d}.png"] = _sample_grid(shadow, run.classes, cfg.seed, run.device)
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            card = _prior_card(cfg, run, net_cfg, done)
            card["parameters"] = sum(p.numel() for p in net.parameters())
            files.update(run.checkpoint_files(net, ema, opt, gen, done, card))
        if files:
            run.commit(files)
    run.close_bar()
    from pnpdiff.priors.trained import load_trained

    return load_trained(run.out / "prior.pt").to(run.device)


def train_classifier(config: TrainConfig | Mapping[str, Any] | str | os.PathLike | None = None, /, *,
                     progress: bool = False, **settings: Any) -> TrainedClassifier:
    """Train a noise-conditional classifier ``p(label | x0 + sigma n)`` for classifier guidance.

    Same settings and output rules as :func:`train` (``prediction``, ``label_dropout`` and
    ``sample_every`` are not used); noise levels are drawn log-uniformly on
    ``[sigma_min, sigma_max]`` so that the classifier is usable along a whole sampling schedule.
    The result is ``output/classifier.pt``.

    Parameters
    ----------
    config : TrainConfig, mapping, or path of a YAML training recipe, optional
        The settings (:class:`TrainConfig` fields; ``recipes/train_digits_classifier.yaml`` shows them).
    progress : bool
        Show a progress bar with the loss.
    **settings
        Fields that override ``config`` (e.g. ``steps=20, output="runs/clf"``).

    Returns
    -------
    TrainedClassifier
        The classifier (EMA weights), also saved as ``output/classifier.pt``: pass its path as
        ``classifier=`` to :func:`pnpdiff.sample` or :func:`pnpdiff.solve`.

    Raises
    ------
    RecipeError
        For an unknown or invalid setting.
    OutputFolderError
        If ``output`` holds files pnpdiff did not write.

    References
    ----------
    P. Dhariwal and A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021.
    https://arxiv.org/abs/2105.05233 (Sec. 4, classifier guidance)
    """
    cfg = _config(config, settings)
    run = _Run(cfg, "classifier", progress)
    with run.folder.hold():  # locked against another run and checked, before any work
        return _train_classifier(cfg, run)


def _train_classifier(cfg: TrainConfig, run: _Run) -> TrainedClassifier:
    """The training loop of :func:`train_classifier`, run while the output folder is held."""
    net_cfg = _net_config(cfg, run.x.shape[1], run.classes)
    net, ema, opt, gen, start = run.setup(lambda: NoiseClassifier(net_cfg))
    x_all, lab_all = run.x.to(run.device), run.labels.to(run.device)
    mean = torch.tensor(run.data_mean, device=run.device).view(1, -1, 1, 1)
    lo, hi = math.log(cfg.sigma_min), math.log(cfg.sigma_max)
    run.bar(start)
    for step in range(start, cfg.steps):
        idx = torch.randint(0, x_all.shape[0], (cfg.batch_size,), generator=gen)
        sigma = torch.exp(lo + (hi - lo) * torch.rand(cfg.batch_size, generator=gen))
        noise = torch.randn((cfg.batch_size, *x_all.shape[1:]), generator=gen)
        s = sigma.to(run.device).view(-1, 1, 1, 1)
        ii = idx.to(run.device)
        x = x_all[ii] + s * noise.to(run.device)
        _, _, c_in, c_noise = preconditioning(s, run.sigma_data)
        run.warm_up(opt, step)
        with _autocast(cfg, run.device):
            logits = net(c_in * (x - mean), c_noise).float()
        loss = torch.nn.functional.cross_entropy(logits, lab_all[ii])
        done = run.update(net, ema, opt, loss, step)
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            card = {"name": cfg.name, "architecture": "pnpdiff.unet.NoiseClassifier", "model": net_cfg.to_dict(),
                    "parameters": sum(p.numel() for p in net.parameters()), "classes": run.classes,
                    "class_names": run.class_names, "channels": int(run.x.shape[1]), "size": [cfg.size, cfg.size],
                    "sigma_data": run.sigma_data, "data_mean": run.data_mean, "sigma_min": cfg.sigma_min,
                    "sigma_max": cfg.sigma_max, "data": run.data_desc, "steps": done, "seed": cfg.seed,
                    "command": cfg.command}
            run.commit(run.checkpoint_files(net, ema, opt, gen, done, card))
    run.close_bar()
    from pnpdiff.priors.trained import load_classifier

    return load_classifier(run.out / "classifier.pt").to(run.device)


def _config(config: Any, settings: Mapping[str, Any]) -> TrainConfig:
    if isinstance(config, (str, os.PathLike)):
        config = load_train_recipe(config)
        settings = {k: (str(Path(v).expanduser().resolve()) if k in _PATH_KEYS and isinstance(v, (str, os.PathLike))
                        and v != "digits" else v) for k, v in settings.items()}
    if config is None:
        base: dict[str, Any] = {}
    elif isinstance(config, TrainConfig):
        base = dict(vars(config))
    elif isinstance(config, Mapping):
        base = dict(config)
    else:
        raise PnPError(f"train() takes a TrainConfig, a mapping or a recipe path, got {type(config).__name__}")
    base.update(settings)
    unknown = sorted(set(base) - _FIELDS)
    if unknown:
        raise RecipeError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    return TrainConfig(**base).validate()
