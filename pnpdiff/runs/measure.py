"""The measurement of a restoration recipe: the operator (and its mask) built for an image, and
``y = A(x) + n`` simulated from a ground truth, or a photo taken as ``y`` itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pnpdiff import operators
from pnpdiff.config.restore import MASK_KINDS, RECIPE_OPERATORS, Recipe
from pnpdiff.errors import OperatorError, PnPError, RecipeError
from pnpdiff.io import load_image, load_source_image, source_image_shape
from pnpdiff.noise import NoiseModel, noise_model
from pnpdiff.operators import masks
from pnpdiff.solvers.common import estimate_noise_level


def build_operator(spec: dict[str, Any], shape: tuple[int, ...], key: str = "operator") -> Any:
    """Build an operator from a recipe mapping ``{name: ..., **kwargs}`` for images of ``shape``.

    ``Inpaint`` takes ``mask: {kind: random|box|freeform, ...generator kwargs}`` (or a path to a
    mask image, white = observed). Parameter errors name their key path (``operator.sigma``).
    """
    kwargs = dict(spec)
    name = kwargs.pop("name")
    if name not in RECIPE_OPERATORS:
        raise RecipeError(f"{key}.name: unknown operator {name!r}; known: {', '.join(RECIPE_OPERATORS)}")
    cls = getattr(operators, name)
    if name == "Inpaint":
        kwargs["mask"] = build_mask(kwargs.get("mask"), shape)
    try:
        return cls(**kwargs)
    except OperatorError as err:
        raise RecipeError(keyed(key, kwargs, err)) from None
    except (TypeError, ValueError) as err:  # a constructor without its own check
        raise RecipeError(f"{key}: {name}: {' '.join(str(err).split())}") from None


def keyed(prefix: str, kwargs: dict[str, Any], err: Exception) -> str:
    """``sigma must be ...`` -> ``operator.sigma: must be ...`` when the message starts with a
    parameter name."""
    msg = " ".join(str(err).split())
    first = msg.split(" ", 1)[0]
    if first in kwargs and " " in msg:
        return f"{prefix}.{first}: {msg.split(' ', 1)[1]}"
    return f"{prefix}: {msg}"


def build_mask(spec: Any, shape: tuple[int, ...]) -> torch.Tensor:
    if spec is None:
        raise RecipeError("operator.mask: Inpaint needs a mask (e.g. mask: {kind: random, p_missing: 0.7})")
    if isinstance(spec, str):
        try:
            m = load_image(spec)
        except PnPError as err:  # a missing or unreadable file: say it is the mask
            raise type(err)(f"operator.mask: {err}") from None
        if tuple(m.shape[-2:]) != tuple(shape[-2:]):
            raise RecipeError(
                f"operator.mask: the mask {spec} is {m.shape[-2]}x{m.shape[-1]} but the image is "
                f"{shape[-2]}x{shape[-1]}; give a mask of the image's size (after 'size')"
            )
        observed = (m[0, :1] > 0.5).to(torch.float32)
        if not bool(observed.any()):
            raise RecipeError(f"operator.mask: the mask {spec} has no observed pixel (white = observed, "
                              "black = missing); nothing is left to restore from")
        return observed
    if not isinstance(spec, dict) or spec.get("kind") not in MASK_KINDS:
        raise RecipeError("operator.mask: a path or a mapping with a 'kind' (random, box, freeform)")
    kw = dict(spec)
    kind = kw.pop("kind")
    fn = {"random": masks.random_mask, "box": masks.box_mask, "freeform": masks.freeform_mask}[kind]
    try:
        return fn(tuple(shape[-3:]), **kw)
    except OperatorError as err:
        raise RecipeError(keyed("operator.mask", kw, err)) from None
    except TypeError as err:
        raise RecipeError(f"operator.mask: {kind} mask: {' '.join(str(err).split())}") from None


@dataclass
class Measurement:
    """One image's measurement as a recipe makes it: ``y``, the operator, the noise level and,
    when the recipe gives a ground truth, ``truth``."""

    y: torch.Tensor
    operator: Any
    sigma_y: float
    sigma_estimated: bool
    bits: int
    truth: torch.Tensor | None = None
    #: a Poisson(-Gaussian) noise model, its numbers known (``sigma_y`` is then its matched Gaussian level)
    noise: NoiseModel | None = None
    #: the true blur of a simulated blind deblurring (``simulate:``), to score the estimated kernel
    true_operator: Any = None


def measure(recipe: Recipe, spec: str, noise_seed: int) -> Measurement:
    """Load ``spec`` and make its measurement: with ``image:``, ``y = A(x) + sigma_y n`` with
    ``n`` drawn from ``noise_seed``; with ``observed:``, the file itself (``sigma_y`` estimated
    when the recipe does not give it)."""
    if recipe.image is not None:
        truth, bits = load_source_image(spec, recipe.size, None)
        op = build_operator(recipe.operator, tuple(truth.shape))
        # a blur to estimate: the measurement comes from the true blur the recipe simulates
        make = op if recipe.simulate is None else build_operator(recipe.simulate, tuple(truth.shape), "simulate")
        true_op = make if make is not op else None
        g = torch.Generator().manual_seed(noise_seed)
        with torch.no_grad():
            clean = make(truth)
        if recipe.noise_model is not None:  # photon counts (and read noise) drawn from the same generator
            model = noise_model(recipe.noise_model)
            y = model.sample(clean, g)
            return Measurement(y, op, model.matched_sigma(y), False, bits, truth, model, true_op)
        sigma_y = recipe.sigma_y if recipe.sigma_y is not None else 0.0
        y = clean + sigma_y * torch.randn(clean.shape, generator=g, dtype=clean.dtype)
        return Measurement(y, op, float(sigma_y), False, bits, truth, None, true_op)
    y, bits = load_source_image(spec, recipe.size, None)
    op = build_operator(recipe.operator, x_shape_guess(recipe.operator, tuple(y.shape)))
    if recipe.noise_model is not None:  # numbers the recipe leaves out are estimated from the photo
        given = noise_model(recipe.noise_model)
        try:
            model = given.resolve(y)
        except PnPError as err:
            raise RecipeError(f"noise: {err}") from None
        return Measurement(y, op, model.matched_sigma(y), not given.resolved, bits, None, model)
    if recipe.sigma_y is not None:
        return Measurement(y, op, float(recipe.sigma_y), False, bits)
    return Measurement(y, op, float(estimate_noise_level(y)), True, bits)


def measurement_shapes(recipe: Recipe, spec: str, batch: int = 1) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The shapes of ``x`` and ``y`` for ``spec`` read from its header alone (nothing decoded),
    for ``batch`` images: what the memory check needs before any work starts."""
    c, h, w = source_image_shape(spec, recipe.size, None)
    if recipe.image is not None:
        return (batch, c, h, w), (batch, c, h, w)
    y_shape = (batch, c, h, w)
    return x_shape_guess(recipe.operator, y_shape), y_shape


def x_shape_guess(op_spec: dict[str, Any], y_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The image shape for a measurement of ``y_shape`` under a recipe's operator, from the
    operator class's own rule (``x_shape_for``), before anything is validated or built."""
    cls = getattr(operators, str(op_spec.get("name")), None)
    if cls is None or not hasattr(cls, "x_shape_for"):
        return tuple(y_shape)
    return tuple(cls.x_shape_for(tuple(y_shape), **{k: v for k, v in op_spec.items() if k != "name"}))
