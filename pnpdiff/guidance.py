"""Conditional generation: class labels, classifier-free guidance and classifier guidance, as a
denoiser that every sampler and solver takes unchanged.

For a class ``c`` and a class-conditional prior ``D(x, sigma, c)`` (``c = None``: the null label),
guidance is a change of the denoiser, i.e. of the score ``(D - x) / sigma^2``:

* **classifier-free guidance** (Ho and Salimans 2021, Eq. 6, with their ``w``)::

      D_w(x, sigma) = (1 + w) D(x, sigma, c) - w D(x, sigma, None)

  ``w = 0`` is the plain conditional model; larger ``w`` trades diversity for class fidelity.
* **classifier guidance** (Dhariwal and Nichol 2021, Algorithm 1 / Eq. 14 in score form), with a
  noise-conditional classifier ``p_phi(c | x, sigma)`` and scale ``s``::

      score_s = score + s grad_x log p_phi(c | x, sigma)
      D_s(x, sigma) = D(x, sigma) + s sigma^2 grad_x log p_phi(c | x, sigma)

  on the unconditional (or conditional) model.

Both can be combined. Because the result is an ordinary denoiser, it composes with every
sampler and solver of the library: the data-consistency solvers (DiffPIR, DDRM, DDNM, DDNM+,
DPIR, RED-diff) only call it, and DPS / PiGDM differentiate through it (for classifier guidance
that is a second derivative of the classifier, computed with ``create_graph``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pnpdiff.errors import PnPError, ValueRangeError
from pnpdiff.priors.base import Prior, as_sigma
from pnpdiff.priors.trained import load_classifier, weights_path

__all__ = ["GuidedPrior", "load_classifier_spec", "guided"]


def load_classifier_spec(spec: Any, device: torch.device | str | None = None) -> Any:
    """Resolve a ``classifier=`` argument: ``"digits"`` (shipped), a ``classifier.pt`` path, or an object.

    Parameters
    ----------
    spec : str, module or None
        ``"digits"``, a path written by ``pnpdiff train-classifier``, a loaded classifier (a module
        with ``log_probs``), or ``None``.
    device : torch.device or str, optional
        Device to move the classifier to.

    Returns
    -------
    module or None
        The classifier (``None`` for ``None``).

    Raises
    ------
    PnPError
        For anything else; a missing or unreadable file raises the loader's error
        (:class:`~pnpdiff.InputFileError`, :class:`~pnpdiff.ChecksumError`, ...).
    """
    if spec is None or isinstance(spec, torch.nn.Module) and hasattr(spec, "log_probs"):
        return spec if device is None or spec is None else spec.to(device)
    if isinstance(spec, str):
        path = weights_path("digits_classifier.pt") if spec == "digits" else spec
        clf = load_classifier(path)
        return clf if device is None else clf.to(device)
    raise PnPError(f"classifier must be 'digits', a path to a classifier.pt written by "
                   f"'pnpdiff train-classifier', or a loaded classifier; got {type(spec).__name__}")


class GuidedPrior(Prior):
    """A prior steered towards class labels (see the module docstring).

    Parameters
    ----------
    prior : Prior
        A prior whose ``denoise`` takes ``label=`` (a class-conditional trained prior) when
        ``label`` is given without a classifier or with ``cfg``; any prior for classifier
        guidance alone.
    label : int, sequence of int or Tensor, optional
        The class of every image (one value) or of each image of the batch.
    cfg : float, optional
        Classifier-free guidance weight ``w >= 0`` (Ho and Salimans' ``w``; ``None`` or 0: the
        conditional model without guidance).
    classifier : module, optional
        A noise-conditional classifier with ``log_probs(x, sigma)`` (``"digits"`` / a path are
        resolved by :func:`guided`).
    classifier_scale : float, optional
        Classifier guidance scale ``s >= 0`` (default 1 when a classifier is given).
    conditional : bool
        Whether the classifier-free part uses the label (True) or the unconditional model with
        the classifier alone (False: pure classifier guidance on the unconditional mode).

    Raises
    ------
    ValueRangeError
        For guidance without a label, a negative or non-finite ``cfg`` / ``classifier_scale``, a
        label out of range, or a label / ``cfg`` for an unconditional prior.

    References
    ----------
    J. Ho and T. Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 Workshop on Deep
    Generative Models and Downstream Applications. https://arxiv.org/abs/2207.12598

    P. Dhariwal and A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021.
    https://arxiv.org/abs/2105.05233
    """

    def __init__(self, prior: Prior, *, label: Any = None, cfg: float | None = None,
                 classifier: Any = None, classifier_scale: float | None = None,
                 conditional: bool = True) -> None:
        super().__init__()
        self.prior = prior
        for attr in ("sigma_min", "sigma_max", "channels", "size", "data_range", "data_mean", "data_var",
                     "accepts_grey"):
            setattr(self, attr, getattr(prior, attr))
        self.name = prior.name  # the base prior's name: solve() picks its defaults by it
        if label is None and (cfg or classifier is not None):
            raise ValueRangeError("guidance needs a class: pass label= (an integer, or one per image)")
        for key, v in (("cfg", cfg), ("classifier_scale", classifier_scale)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v) >= 0
                                  or v != v or v == float("inf")):
                raise ValueRangeError(f"{key} must be a finite number >= 0, got {v!r}")
        if classifier_scale is not None and classifier is None:
            raise ValueRangeError("classifier_scale needs a classifier (e.g. classifier='digits')")
        self.cfg = float(cfg or 0.0)
        self.classifier = classifier
        self.classifier_scale = float(1.0 if classifier_scale is None else classifier_scale)
        self.conditional = bool(conditional)
        if self.conditional and int(getattr(prior, "classes", 0) or 0) == 0 and (self.cfg or classifier is None):
            raise ValueRangeError(f"prior '{prior.name}' is unconditional: it takes no label or cfg; use a "
                                  "classifier (classifier='digits') for classifier guidance")
        n_cls = int(getattr(classifier, "classes", 0) or getattr(prior, "classes", 0) or 0)
        try:  # a class name ("three"), a list of strings or a meta tensor is no label
            lab = None if isinstance(label, (str, bytes)) else torch.as_tensor(label).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            lab = None
        if (lab is None or lab.device.type == "meta" or lab.is_floating_point() or lab.dtype == torch.bool
                or (n_cls and bool(((lab < 0) | (lab >= n_cls)).any()))):
            raise ValueRangeError(f"label must be integers in 0..{max(n_cls - 1, 0)} (one, or one per image), "
                                  f"got {label!r}")
        self.label = lab.long()

    def _labels(self, x: Tensor) -> Tensor:
        lab = self.label.to(x.device)
        if lab.numel() == 1:
            return lab.expand(x.shape[0])
        if lab.numel() != x.shape[0]:
            raise ValueRangeError(f"{lab.numel()} labels for a batch of {x.shape[0]} images; give one or one per image")
        return lab

    def denoise(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        lab = self._labels(x)
        if self.conditional:
            d = self.prior.denoise(x, sigma, label=lab)
            if self.cfg:
                d = (1 + self.cfg) * d - self.cfg * self.prior.denoise(x, sigma)
        else:
            d = self.prior.denoise(x, sigma)
        if self.classifier is not None and self.classifier_scale:
            s = as_sigma(sigma, x).view(-1, *([1] * (x.ndim - 1)))
            outer = torch.is_grad_enabled() and x.requires_grad  # DPS / PiGDM differentiate through us
            with torch.enable_grad():
                xi = x if outer else x.detach().requires_grad_(True)
                logp = self.classifier.log_probs(xi, sigma).gather(1, lab[:, None]).sum()
                (grad,) = torch.autograd.grad(logp, xi, create_graph=outer)
            d = d + self.classifier_scale * s**2 * grad
        return d


def guided(prior: Prior, label: Any = None, cfg: float | None = None, classifier: Any = None,
           classifier_scale: float | None = None) -> Prior:
    """``prior`` itself when nothing is asked, else a :class:`GuidedPrior` (classifier resolved).

    With a classifier and no ``cfg`` the guidance acts on the *unconditional* model (Dhariwal and
    Nichol's setting); with ``cfg`` as well, on the classifier-free guided one.

    Parameters
    ----------
    prior : Prior
        The prior to steer.
    label : int, sequence of int or Tensor, optional
        The class of every image, or one per image.
    cfg : float, optional
        Classifier-free guidance weight ``w >= 0``.
    classifier : str or module, optional
        ``"digits"``, a ``classifier.pt`` path or a loaded classifier (see
        :func:`load_classifier_spec`).
    classifier_scale : float, optional
        Classifier guidance scale ``s >= 0`` (default 1 with a classifier).

    Returns
    -------
    Prior
        ``prior`` itself, or a :class:`GuidedPrior` around it.

    Raises
    ------
    ValueRangeError
        As :class:`GuidedPrior`.

    References
    ----------
    J. Ho and T. Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 Workshop on Deep
    Generative Models and Downstream Applications. https://arxiv.org/abs/2207.12598

    P. Dhariwal and A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021.
    https://arxiv.org/abs/2105.05233
    """
    if label is None and cfg is None and classifier is None and classifier_scale is None:
        return prior
    device = next((b.device for b in prior.buffers()), None)
    clf = load_classifier_spec(classifier, device)
    conditional = cfg is not None or clf is None
    return GuidedPrior(prior, label=label, cfg=cfg, classifier=clf, classifier_scale=classifier_scale,
                       conditional=conditional)
