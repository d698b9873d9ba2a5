"""Training runs: :func:`train` (a diffusion prior) and :func:`train_classifier` (a noise-conditional
guidance classifier) from a :class:`~pnpdiff.config.train.TrainConfig`, with checkpoints, resume,
EMA weights, sample grids and a model card."""

from __future__ import annotations

import copy
import csv
import io as _io
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from pnpdiff._version import __version__
from pnpdiff.config.train import TRAIN_FIELDS, TRAIN_PATH_KEYS, TrainConfig, load_train_recipe
from pnpdiff.datasets import load_dataset
from pnpdiff.errors import OutputFolderError, PnPError, RecipeError
from pnpdiff.guidance import GuidedPrior
from pnpdiff.io import save_image
from pnpdiff.outputs import OutputFolder
from pnpdiff.priors.trained import (
    CLASSIFIER_FORMAT,
    PRIOR_FORMAT,
    TrainedClassifier,
    TrainedPrior,
    load_classifier,
    load_trained,
    preconditioning,
)
from pnpdiff.schedules import karras
from pnpdiff.solvers import heun
from pnpdiff.training import TRAIN_FORMAT, autocast, draw_sigma, ema_update, grid, loss_weight, train_device
from pnpdiff.unet import NoiseClassifier, SmallUNet, UNetConfig


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
        self.cfg, self.kind, self.progress = cfg, kind, progress
        self.device = train_device(cfg)
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
        if not isinstance(ck, dict) or ck.get("format") != TRAIN_FORMAT or ck.get("kind") != self.kind:
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
        state = {"format": TRAIN_FORMAT, "kind": self.kind, "step": done, "fingerprint": _fingerprint(self.cfg),
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
        ema_update(ema, net, cfg.ema, step)
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
    return grid(heun(model, sig, x_T).clamp(0, 1), rows=max(classes, 1))


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
        with autocast(cfg, run.device):
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
        with autocast(cfg, run.device):
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

    return load_classifier(run.out / "classifier.pt").to(run.device)


def _config(config: Any, settings: Mapping[str, Any]) -> TrainConfig:
    if isinstance(config, (str, os.PathLike)):
        config = load_train_recipe(config)
        settings = {k: (str(Path(v).expanduser().resolve())
                        if k in TRAIN_PATH_KEYS and isinstance(v, (str, os.PathLike)) and v != "digits" else v)
                    for k, v in settings.items()}
    if config is None:
        base: dict[str, Any] = {}
    elif isinstance(config, TrainConfig):
        base = dict(vars(config))
    elif isinstance(config, Mapping):
        base = dict(config)
    else:
        raise PnPError(f"train() takes a TrainConfig, a mapping or a recipe path, got {type(config).__name__}")
    base.update(settings)
    unknown = sorted(set(base) - TRAIN_FIELDS)
    if unknown:
        raise RecipeError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(TRAIN_FIELDS))}")
    return TrainConfig(**base).validate()
