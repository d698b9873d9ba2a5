"""Priors trained by ``pnpdiff train``: a :class:`~pnpdiff.unet.SmallUNet` and its model card.

A trained prior file (``prior.pt``) is a plain dictionary loaded with ``weights_only=True``::

    {"format": "pnpdiff-prior/1", "card": {...}, "state_dict": {...}}

The card holds everything needed to rebuild and use the network: the architecture
(:class:`~pnpdiff.unet.UNetConfig`), what it predicts (``prediction``: ``"edm"``, ``"x0"`` or
``"eps"``), ``sigma_data``, the valid sigma range, the data range, mean and variance (measured on
the training data), channels, size, class names, and how it was trained (command, seed, steps).
The same card is written beside the file as ``model_card.yaml`` for people to read.

The network sees the centred, scaled input ``c_in (x - m)`` with ``c_in = 1 / sqrt(sigma^2 +
sigma_data^2)`` and ``c_noise = log(sigma) / 4`` (Karras et al. 2022, Table 1), and the denoiser is

* ``"edm"``: ``D = m + c_skip (x - m) + c_out F`` with ``c_skip = sigma_data^2 / (sigma^2 +
  sigma_data^2)`` and ``c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)``;
* ``"x0"``: ``D = m + sigma_data F`` (the network predicts the normalised clean image);
* ``"eps"``: ``D = x - sigma F`` (the network predicts the noise, as in DDPM).

All in pnpdiff's units: [0, 1] images, variance-exploding ``x = x0 + sigma n``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pnpdiff.errors import PnPError, ShapeError, ValueRangeError, WeightsNotFoundError
from pnpdiff.priors.base import Prior, as_sigma, check_data_range
from pnpdiff.unet import NoiseClassifier, SmallUNet, UNetConfig

__all__ = ["TrainedPrior", "TrainedClassifier", "load_trained", "load_classifier", "PREDICTIONS",
           "PRIOR_FORMAT", "CLASSIFIER_FORMAT", "preconditioning"]

PRIOR_FORMAT = "pnpdiff-prior/1"
CLASSIFIER_FORMAT = "pnpdiff-classifier/1"
#: what the network of a trained prior predicts
PREDICTIONS = ("edm", "x0", "eps")


def preconditioning(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """EDM's ``c_skip, c_out, c_in, c_noise`` for a ``(B, 1, 1, 1)`` sigma (Karras et al. 2022, Table 1)."""
    sd2 = sigma_data**2
    c_skip = sd2 / (sigma**2 + sd2)
    c_out = sigma * sigma_data / (sigma**2 + sd2).sqrt()
    c_in = 1 / (sigma**2 + sd2).sqrt()
    c_noise = sigma.clamp_min(1e-20).log().flatten() / 4
    return c_skip, c_out, c_in, c_noise


def _channel_tensor(values: Any, channels: int, what: str) -> Tensor:
    t = torch.as_tensor(values, dtype=torch.float32).flatten()
    if t.numel() == 1:
        t = t.expand(channels)
    if t.numel() != channels or not bool(torch.isfinite(t).all()):
        raise ValueRangeError(f"model card: {what} must hold one finite value per channel ({channels}), got {values!r}")
    return t.reshape(channels, 1, 1).clone()


class TrainedPrior(Prior):
    """A prior trained by :func:`pnpdiff.train` (denoising score matching), as a denoiser.

    Parameters
    ----------
    net : SmallUNet
        The network (usually its EMA weights).
    card : dict
        The model card (see the module docstring); ``card["prediction"]`` selects the
        parameterisation.

    Notes
    -----
    ``denoise(x, sigma, label=None)`` takes an optional class label per image (``None`` or the
    value ``classes``: unconditional, the null label of classifier-free guidance). Solvers call
    ``denoise(x, sigma)`` (unconditional); :class:`~pnpdiff.guidance.GuidedPrior` adds labels,
    classifier-free and classifier guidance.

    Raises
    ------
    ValueRangeError
        If the card's ``prediction`` is unknown or its data moments do not fit the channels.

    References
    ----------
    T. Karras, M. Aittala, T. Aila and S. Laine, "Elucidating the Design Space of
    Diffusion-Based Generative Models", NeurIPS 2022. https://arxiv.org/abs/2206.00364

    J. Ho, A. Jain and P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    https://arxiv.org/abs/2006.11239

    J. Ho and T. Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 Workshop on Deep
    Generative Models and Downstream Applications. https://arxiv.org/abs/2207.12598
    """

    accepts_grey = False

    def __init__(self, net: SmallUNet, card: dict[str, Any]) -> None:
        super().__init__()
        self.net = net.eval()
        self.card = dict(card)
        pred = card.get("prediction")
        if pred not in PREDICTIONS:
            raise ValueRangeError(f"model card: prediction must be one of {', '.join(PREDICTIONS)}, got {pred!r}")
        self.prediction = pred
        self.sigma_data = float(card["sigma_data"])
        self.sigma_min = float(card["sigma_min"])
        self.sigma_max = float(card["sigma_max"])
        self.channels = int(card["channels"])
        self.size = (int(card["size"][0]), int(card["size"][1]))
        self.classes = int(card.get("classes", 0))
        self.class_names = list(card.get("class_names") or [str(i) for i in range(self.classes)])
        self.name = str(card.get("name", "trained"))
        self.data_range = check_data_range(card.get("data_range", (0.0, 1.0)))
        self.register_buffer("mean_", _channel_tensor(card["data_mean"], self.channels, "data_mean"))
        self.register_buffer("var_", _channel_tensor(card["data_var"], self.channels, "data_var"))
        self.data_mean = self.mean_
        self.data_var = self.var_

    def _apply(self, fn, recurse=True):  # keep data_mean / data_var on the buffers' device
        out = super()._apply(fn, recurse)
        self.data_mean, self.data_var = self.mean_, self.var_
        return out

    def check_label(self, label: Tensor | int | None, batch: int, device: torch.device) -> Tensor | None:
        """A ``(B,)`` long tensor of labels (``classes`` = none), or None; raises for bad labels.

        Parameters
        ----------
        label : Tensor, int or None
            One label for the batch or one per image, integers in ``0..classes`` (``classes``: none).
        batch : int
            Batch size.
        device : torch.device
            Device of the result.

        Returns
        -------
        Tensor or None
            ``(batch,)`` long labels, or ``None`` for ``None``.

        Raises
        ------
        ValueRangeError
            For a label on an unconditional prior, non-integer labels or labels out of range.
        ShapeError
            If the number of labels is neither 1 nor ``batch``.
        """
        if label is None:
            return None
        if self.classes == 0:
            raise ValueRangeError(f"prior '{self.name}' is unconditional (trained without labels); "
                                  "drop label= / cfg=")
        lab = torch.as_tensor(label, device=device).reshape(-1)
        if lab.is_floating_point() or lab.dtype == torch.bool:
            raise ValueRangeError(f"labels must be integers in 0..{self.classes - 1}, got {label!r}")
        if lab.numel() == 1:
            lab = lab.expand(batch)
        if lab.numel() != batch:
            raise ShapeError(f"{lab.numel()} labels for a batch of {batch} images; give one label or one per image")
        if bool(((lab < 0) | (lab > self.classes)).any()):
            raise ValueRangeError(f"labels must be in 0..{self.classes - 1} for prior '{self.name}' "
                                  f"({self.classes} classes), got {lab.tolist()}")
        return lab.long()

    def denoise(self, x: Tensor, sigma: float | Tensor, label: Tensor | int | None = None) -> Tensor:
        self.check_image(x)
        lab = self.check_label(label, x.shape[0], x.device)
        s = as_sigma(sigma, x).view(-1, 1, 1, 1)
        m = self.mean_.to(x.dtype)
        c_skip, c_out, c_in, c_noise = preconditioning(s, self.sigma_data)
        wdtype = next(self.net.parameters()).dtype
        F = self.net((c_in * (x - m)).to(wdtype), c_noise, lab).to(x.dtype)
        if self.prediction == "edm":
            d = m + c_skip * (x - m) + c_out * F
        elif self.prediction == "x0":
            d = m + self.sigma_data * F
        else:
            d = x - s * F
        return torch.where(s > 0, d, x)  # sigma = 0: nothing to remove

    def extra_repr(self) -> str:
        return f"name={self.name}, prediction={self.prediction}, size={self.size}, classes={self.classes}"


class TrainedClassifier(torch.nn.Module):
    """A noise-conditional classifier trained by ``pnpdiff train-classifier``.

    ``log_probs(x, sigma)`` returns ``(B, classes)`` log-probabilities of the labels given the
    noisy image ``x = x0 + sigma n`` ([0, 1] units); its gradient in ``x`` is what classifier
    guidance adds to the score.

    Parameters
    ----------
    net : NoiseClassifier
        The network (usually its EMA weights).
    card : dict
        The classifier's model card (``classes``, ``channels``, ``size``, ``sigma_data``,
        ``data_mean``, ...).

    References
    ----------
    P. Dhariwal and A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021.
    https://arxiv.org/abs/2105.05233
    """

    def __init__(self, net: NoiseClassifier, card: dict[str, Any]) -> None:
        super().__init__()
        self.net = net.eval()
        self.card = dict(card)
        self.name = str(card.get("name", "classifier"))
        self.classes = int(card["classes"])
        self.channels = int(card["channels"])
        self.size = (int(card["size"][0]), int(card["size"][1]))
        self.sigma_data = float(card["sigma_data"])
        self.register_buffer("mean_", _channel_tensor(card["data_mean"], self.channels, "data_mean"))

    def logits(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Unnormalised class scores of noisy images.

        Parameters
        ----------
        x : Tensor
            Noisy images ``x = x0 + sigma n``, ``(B, C, H, W)`` in [0, 1] units.
        sigma : float or Tensor
            Noise level, a number or one per image.

        Returns
        -------
        Tensor
            ``(B, classes)`` logits, dtype of ``x``.
        """
        s = as_sigma(sigma, x).view(-1, 1, 1, 1)
        _, _, c_in, c_noise = preconditioning(s.clamp_min(1e-4), self.sigma_data)
        wdtype = next(self.net.parameters()).dtype
        return self.net((c_in * (x - self.mean_.to(x.dtype))).to(wdtype), c_noise).to(x.dtype)

    def log_probs(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Log-probabilities ``log p(label | x, sigma)`` of the classes.

        Parameters
        ----------
        x : Tensor
            Noisy images ``x = x0 + sigma n``, ``(B, C, H, W)`` in [0, 1] units.
        sigma : float or Tensor
            Noise level, a number or one per image.

        Returns
        -------
        Tensor
            ``(B, classes)`` log-probabilities (each row's exponentials sum to one).
        """
        return torch.log_softmax(self.logits(x, sigma), dim=1)

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """Same as :meth:`log_probs`.

        Parameters
        ----------
        x : Tensor
            Noisy images ``x = x0 + sigma n``, ``(B, C, H, W)`` in [0, 1] units.
        sigma : float or Tensor
            Noise level, a number or one per image.

        Returns
        -------
        Tensor
            ``(B, classes)`` log-probabilities.
        """
        return self.log_probs(x, sigma)


def _read(path: str | Path, fmt: str, what: str) -> dict[str, Any]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(f"{what} file {p} does not exist")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        first = str(err).splitlines()[0][:120] if str(err) else ""
        raise PnPError(f"{p} is not a readable {what} file ({type(err).__name__}: {first})") from None
    if isinstance(data, dict) and data.get("format") == "pnpdiff-train/1":  # a training checkpoint: its EMA prior
        data = data.get("prior" if fmt == PRIOR_FORMAT else "classifier") or {}
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise PnPError(f"{p} is not a pnpdiff {what} (expected format {fmt!r}, written by pnpdiff "
                       f"{'train' if fmt == PRIOR_FORMAT else 'train-classifier'})")
    return data


def _with_weights(net: torch.nn.Module, data: dict[str, Any], path: str | Path) -> torch.nn.Module:
    """``net`` with the file's weights, or a :class:`PnPError` if they do not fit the card."""
    try:
        net.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        raise PnPError(f"{path}: the weights do not match the model card's architecture "
                       f"({str(err).splitlines()[0][:160]})") from None
    return net


def is_trained_file(path: str | Path) -> bool:
    """Whether ``path`` is a prior written by ``pnpdiff train`` (a quick look, no error)."""
    try:
        _read(path, PRIOR_FORMAT, "trained prior")
        return True
    except PnPError:
        return False


def load_trained(path: str | Path, *, name: str | None = None) -> TrainedPrior:
    """Load a prior written by :func:`pnpdiff.train` (``prior.pt``, or a training ``checkpoint.pt``).

    Parameters
    ----------
    path : str or Path
        The file.
    name : str, optional
        Name of the prior (default: the card's).

    Returns
    -------
    TrainedPrior
        The prior, in eval mode, on the CPU.

    Raises
    ------
    WeightsNotFoundError
        The file does not exist.
    PnPError
        The file is not a pnpdiff prior, or its card or weights do not match.
    """
    data = _read(path, PRIOR_FORMAT, "trained prior")
    card = dict(data["card"])
    if name is not None:
        card["name"] = name
    return TrainedPrior(_with_weights(SmallUNet(UNetConfig.from_dict(card["model"])), data, path), card)


def load_classifier(path: str | Path) -> TrainedClassifier:
    """Load a classifier written by ``pnpdiff train-classifier`` (see :func:`load_trained`).

    Parameters
    ----------
    path : str or Path
        ``classifier.pt`` (or a training ``checkpoint.pt``).

    Returns
    -------
    TrainedClassifier
        The classifier, in eval mode, on the CPU.

    Raises
    ------
    WeightsNotFoundError
        The file does not exist.
    PnPError
        The file is not a pnpdiff classifier, or its card or weights do not match.
    """
    data = _read(path, CLASSIFIER_FORMAT, "classifier")
    card = dict(data["card"])
    return TrainedClassifier(_with_weights(NoiseClassifier(UNetConfig.from_dict(card["model"])), data, path), card)


def weights_path(filename: str) -> Path:
    """A weights file shipped inside the package (``pnpdiff/weights/``)."""
    return Path(__file__).resolve().parents[1] / "weights" / filename

