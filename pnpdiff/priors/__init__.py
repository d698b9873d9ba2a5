"""Priors: denoiser families behind one contract, ``prior.denoise(x, sigma)`` (see :mod:`.base`).

* :func:`load_prior` resolves ``prior=`` specifications (names, ``"name:/path"``, objects,
  callables) through a small registry (:mod:`.registry`).
* Adapters (:mod:`.adapters`) wrap eps-, x0- and EDM-parameterised models, deepinv denoisers and
  plain callables into the VE contract on [0, 1] images.
* ADM checkpoints ``"ffhq"`` and ``"imagenet"`` (:mod:`.adm`), with model cards, the cache and
  safe loading in :mod:`.hub`.
* Analytic Gaussian / Gaussian-mixture priors with exact denoisers and posteriors
  (:mod:`.gaussian`), the references of the test suite.
"""

from __future__ import annotations

from pnpdiff.priors.adapters import (
    CallablePrior,
    DeepinvPrior,
    EDMPrior,
    EpsPrior,
    VPEpsPrior,
    VPTable,
    X0Prior,
    ddpm_alphas_cumprod,
)
from pnpdiff.priors.adm import ADMConfig, ADMPrior, ADMUNet, load_adm
from pnpdiff.priors.base import Prior, as_sigma
from pnpdiff.priors.ffdnet import FFDNet, FFDNetPrior
from pnpdiff.priors.gaussian import (
    GaussianMixturePrior,
    GaussianPrior,
    exact_posterior,
    mcgdiff_mixture,
    random_svd_operator,
)
from pnpdiff.priors.hub import MODEL_CARDS, ModelCard, cache_dir
from pnpdiff.priors.registry import (
    clear_prior_cache,
    known_priors,
    load_prior,
    register_adm_checkpoint,
    register_prior,
)
from pnpdiff.priors.trained import TrainedClassifier, TrainedPrior, load_classifier, load_trained

__all__ = [
    "Prior",
    "as_sigma",
    "load_prior",
    "register_prior",
    "register_adm_checkpoint",
    "known_priors",
    "clear_prior_cache",
    "FFDNet",
    "FFDNetPrior",
    "EpsPrior",
    "VPEpsPrior",
    "X0Prior",
    "EDMPrior",
    "DeepinvPrior",
    "CallablePrior",
    "VPTable",
    "ddpm_alphas_cumprod",
    "ADMConfig",
    "ADMUNet",
    "ADMPrior",
    "load_adm",
    "ModelCard",
    "MODEL_CARDS",
    "cache_dir",
    "GaussianPrior",
    "GaussianMixturePrior",
    "TrainedPrior",
    "TrainedClassifier",
    "load_trained",
    "load_classifier",
    "exact_posterior",
    "mcgdiff_mixture",
    "random_svd_operator",
]
