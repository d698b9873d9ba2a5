"""What an operator class declares about itself, for the front door to read without a table of
class names: its task (``task``), how the image's shape follows from the measurement's
(``x_shape_for`` on the class, ``x_shape`` on an instance) and the range of its measurement
(``y_range``).

The references are written here on purpose: ``TASK_OF_NAME`` is what ``pnpdiff.api.task_of``
returned for each class name before the classes declared it, and ``_reference_x_shape_guess`` is
the recipe runner's former ``_x_shape_guess`` (pnpdiff/recipes.py at 7637dd3), copied verbatim.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytest
import torch

from pnpdiff import operators
from pnpdiff.operators import (
    Blur,
    Colorize,
    Composition,
    Downsample,
    GaussianBlur,
    Identity,
    Inpaint,
    Matrix,
    MotionBlur,
    PhaseRetrieval,
    SaturatedBlur,
    UniformBlur,
    random_mask,
)
from pnpdiff.operators.base import ImageModule, LinearOperator

ALLOWED_TASKS = {"deblur", "sr", "inpaint", "denoise", "colorize", "nonlinear", "generic"}

#: ``pnpdiff.api.task_of(name)`` before the classes declared their task (the name-based table)
TASK_OF_NAME = {
    "Blur": "deblur",
    "GaussianBlur": "deblur",
    "UniformBlur": "deblur",
    "MotionBlur": "deblur",
    "Downsample": "sr",
    "Inpaint": "inpaint",
    "Identity": "denoise",
    "Colorize": "colorize",
    "SaturatedBlur": "nonlinear",
    "PhaseRetrieval": "nonlinear",
    "Matrix": "generic",
    "DeepinvOperator": "generic",
    "LinearOperator": "generic",
    "DiagonalOperator": "generic",
    "Composition": "generic",
}


def _reference_x_shape_guess(op_spec: dict[str, Any], y_shape: tuple[int, ...]) -> tuple[int, ...]:
    if op_spec.get("name") == "Downsample":
        f = op_spec.get("factor", 1)
        f = f if isinstance(f, int) and not isinstance(f, bool) and f > 0 else 1
        return (*y_shape[:-2], y_shape[-2] * f, y_shape[-1] * f)
    if op_spec.get("name") == "Colorize":
        return (*y_shape[:-3], 3, *y_shape[-2:])
    return y_shape


PUBLIC_CLASSES = {
    name: obj
    for name in operators.__all__
    if inspect.isclass(obj := getattr(operators, name)) and issubclass(obj, ImageModule)
}


# ------------------------------------------------------------------------------------------ task
def test_every_public_operator_class_is_in_the_reference_table() -> None:
    """A new operator class must say what it is: this table (and the class's ``task``) grows with it."""
    assert set(PUBLIC_CLASSES) == set(TASK_OF_NAME)


@pytest.mark.parametrize("name", sorted(TASK_OF_NAME))
def test_class_declares_the_task_the_name_table_gave(name: str) -> None:
    cls = getattr(operators, name)
    assert "task" in dir(cls)
    assert cls.task in ALLOWED_TASKS
    assert cls.task == TASK_OF_NAME[name]


def test_instances_carry_their_class_task() -> None:
    for op in (GaussianBlur(1.0), Downsample(2), Inpaint(torch.ones(4, 4)), Identity(), Colorize(),
               SaturatedBlur(1.0), PhaseRetrieval(2.0), Matrix(torch.eye(3)), GaussianBlur(1.0) @ Downsample(2)):
        assert op.task == type(op).task == TASK_OF_NAME[type(op).__name__]


def test_subclasses_default_as_the_callable_rule_did() -> None:
    """Without a declaration of its own, a linear operator is "generic" and a forward-only module
    "nonlinear" (today's rule for a callable without an adjoint); a subclass of a blur is a blur."""

    class MyLinear(LinearOperator):
        def forward(self, x):
            return x

        def adjoint(self, y):
            return y

    class MyCamera(ImageModule):
        def forward(self, x):
            return x.clamp(0, 0.5)

    class MyBlur(GaussianBlur):
        pass

    assert MyLinear.task == "generic"
    assert MyCamera.task == "nonlinear"
    assert MyBlur.task == "deblur"


# ------------------------------------------------------------------------------------ x's shape
_SHAPES = [(1, 3, 8, 8), (2, 1, 6, 10), (3, 8, 8), (8, 8), (1, 1, 1, 1)]
_FACTORS = [{}, {"factor": 1}, {"factor": 2}, {"factor": 3}, {"factor": 4}, {"factor": 0}, {"factor": -2},
            {"factor": 2.0}, {"factor": "2"}, {"factor": True}, {"factor": None}, {"factor": [2]}]
_CASES = (
    [("Downsample", p, s) for p in _FACTORS for s in _SHAPES]
    + [("Downsample", {"factor": 2, "filter": "box", "sigma": None}, s) for s in _SHAPES]
    + [("Colorize", p, s) for p in ({}, {"weights": (0.3, 0.6, 0.1)}) for s in [(1, 1, 8, 8), (1, 8, 8), (8, 8)]]
    + [(n, p, s) for n, p in [("GaussianBlur", {"sigma": 2.0}), ("MotionBlur", {"size": 9, "seed": 0}),
                              ("UniformBlur", {"size": 3}), ("Blur", {"kernel": [[1.0]]}),
                              ("Inpaint", {"mask": {"kind": "random"}}), ("Identity", {}),
                              ("SaturatedBlur", {"sigma": 1.0, "gain": 3.0}), ("Matrix", {})]
       for s in _SHAPES]
)


@pytest.mark.parametrize(("name", "params", "y_shape"), _CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(_CASES)])
def test_x_shape_for_is_the_recipe_runners_former_guess(name: str, params: dict, y_shape: tuple) -> None:
    want = _reference_x_shape_guess({"name": name, **params}, y_shape)
    got = getattr(operators, name).x_shape_for(y_shape, **params)
    assert got == want
    assert type(got) is tuple and all(type(v) is int for v in got)


def test_x_shape_for_reads_torch_sizes_and_lists() -> None:
    assert Downsample.x_shape_for(torch.Size([1, 3, 4, 5]), factor=2) == (1, 3, 8, 10)
    assert Downsample.x_shape_for([1, 3, 4, 5], factor=2) == (1, 3, 8, 10)
    assert Colorize.x_shape_for(torch.Size([2, 1, 4, 5])) == (2, 3, 4, 5)


_ODD_SHAPES = [(), (5,), "ab", None, 5, (1.5, 2.0), (True, 4), ("a", "b", "c")]
_ODD_PARAMS = [{}, {"factor": "x"}, {"factor": float("nan")}, {"oversample": "x"}, {"oversample": -1.0},
               {"oversample": float("inf")}, {"oversample": True}, {"input_shape": "ab"}, {"input_shape": (0, 4)},
               {"input_shape": (4,)}, {"weights": None}, {"unknown": object()}]


@pytest.mark.parametrize("name", sorted(PUBLIC_CLASSES))
def test_x_shape_for_never_raises(name: str) -> None:
    """A guess made before the recipe is checked: odd shapes and parameters give a tuple, not an error."""
    cls = PUBLIC_CLASSES[name]
    for shape in _ODD_SHAPES + _SHAPES:
        for params in _ODD_PARAMS:
            assert isinstance(cls.x_shape_for(shape, **params), tuple)


def _cases_for_instances():
    g = torch.Generator().manual_seed(0)
    mask = random_mask((1, 1, 12, 12), 0.5, seed=0)
    return [
        (GaussianBlur(1.0), (2, 3, 12, 12)),
        (UniformBlur(3, boundary="reflect"), (1, 1, 12, 12)),
        (MotionBlur(5, seed=0), (1, 3, 12, 12)),
        (Downsample(3), (1, 3, 12, 18)),
        (Downsample(2, filter="box"), (2, 1, 12, 12)),
        (Inpaint(mask), (1, 3, 12, 12)),
        (Identity(), (1, 3, 12, 12)),
        (Colorize(), (1, 3, 12, 12)),
        (Colorize((0.25, 0.25, 0.25, 0.25)), (1, 4, 12, 12)),
        (SaturatedBlur(1.0), (1, 3, 12, 12)),
        (PhaseRetrieval(2.0), (1, 3, 12, 12)),
        (PhaseRetrieval(1.0, input_shape=(12, 12)), (2, 1, 12, 12)),
        (Matrix(torch.randn(3, 8, generator=g)), (2, 8)),
        (Matrix(torch.randn(3, 8, generator=g), input_shape=(2, 2, 2)), (2, 2, 2, 2)),
        (GaussianBlur(1.0) @ Downsample(2), (1, 3, 16, 16)),
        (Downsample(2) @ Colorize(), (1, 3, 12, 12)),
    ]


@pytest.mark.parametrize(("op", "x_shape"), _cases_for_instances(), ids=lambda v: type(v).__name__)
def test_instance_x_shape_inverts_the_forward_shape(op, x_shape) -> None:
    """``op.x_shape(op(x).shape) == x.shape``: the instance's own factor, channels, padding or
    declared size decide."""
    x = torch.rand(x_shape, generator=torch.Generator().manual_seed(1))
    y = op(x)
    assert op.x_shape(y.shape) == tuple(x.shape)


# -------------------------------------------------------------------------------- phase retrieval
@pytest.mark.parametrize("size", [(16, 16), (20, 28)])
@pytest.mark.parametrize("oversample", [2.0, 1.0, 0.0, 3.7])
def test_phase_retrieval_x_shape_for_inverts_its_forward_shape(size, oversample) -> None:
    op = PhaseRetrieval(oversample)
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    y = op(x)
    if oversample > 0:
        assert tuple(y.shape) != tuple(x.shape)  # the measurement is larger: the shapes differ
    assert PhaseRetrieval.x_shape_for(tuple(y.shape), oversample=oversample) == tuple(x.shape)
    assert op.x_shape(y.shape) == tuple(x.shape)


def test_phase_retrieval_x_shape_for_at_dps_size_and_every_small_side() -> None:
    """DPS's experiment: 256x256 images, oversample 2, a 384x384 spectrum (64 zero rows and columns
    each side, the padding DPS hard-codes); and every side from 1 to 200 at the default padding."""
    assert PhaseRetrieval.x_shape_for((1, 3, 384, 384), oversample=2.0) == (1, 3, 256, 256)
    assert PhaseRetrieval.x_shape_for((1, 3, 384, 384)) == (1, 3, 256, 256)  # 2.0 is the default
    for n in range(1, 201):
        m = n + 2 * math.floor(n / 4)  # the padding rule p = int(oversample / 8 * n) at oversample 2
        assert PhaseRetrieval.x_shape_for((m, m)) == (n, n)


def test_phase_retrieval_declared_input_shape() -> None:
    op = PhaseRetrieval(2.0, input_shape=(3, 16, 16))
    assert op.input_shape == (3, 16, 16)
    assert op.x_shape((1, 3, 24, 24)) == (1, 3, 16, 16)
    assert PhaseRetrieval.x_shape_for((1, 3, 24, 24), oversample=2.0, input_shape=(16, 16)) == (1, 3, 16, 16)
    assert op(torch.rand(1, 3, 16, 16)).shape == (1, 3, 24, 24)
    assert PhaseRetrieval(2.0).input_shape is None  # any size by default
    assert "input_shape=(3, 16, 16)" in repr(op)


def test_phase_retrieval_measurement_is_not_an_image() -> None:
    """Its ``y_range`` is ``None``: the zero frequency of a constant image of value ``m`` is
    ``m H W / sqrt(H' W')`` (orthonormal DFT of the padded image), far above 1."""
    assert PhaseRetrieval.y_range is None
    assert PhaseRetrieval(2.0).y_range is None
    y = PhaseRetrieval(2.0)(torch.full((1, 1, 16, 16), 0.5, dtype=torch.float64))
    assert float(y.max()) == pytest.approx(0.5 * 16 * 16 / math.sqrt(24 * 24), rel=1e-12)
    assert float(y.max()) > 5


# --------------------------------------------------------------------------------- y's range
def _image_valued():
    g = torch.Generator().manual_seed(2)
    k = torch.rand(5, 5, generator=g)
    return [
        GaussianBlur(1.5), GaussianBlur(1.0, boundary="reflect"), GaussianBlur(1.0, boundary="zeros"),
        UniformBlur(3), MotionBlur(7, seed=0, boundary="reflect"), Blur(k / k.sum()),
        Blur(torch.stack([k, k.T, k.flip(0)]) / k.sum(), boundary="zeros"),
        Downsample(2, filter="box"), Downsample(4, filter="bilinear"), Downsample(2, filter="gaussian"),
        Inpaint(random_mask((1, 1, 16, 16), 0.6, seed=0)), Inpaint(torch.rand(16, 16, generator=g), soft=True),
        Identity(), Colorize(), SaturatedBlur(1.0), SaturatedBlur(2.0, gain=8.0, boundary="reflect"),
        GaussianBlur(1.0) @ Downsample(2, filter="box"), Inpaint(torch.ones(8, 8)) @ Downsample(2, filter="box"),
    ]


def _inputs():
    g = torch.Generator().manual_seed(3)
    shape = (2, 3, 16, 16)
    return {
        "zeros": torch.zeros(shape, dtype=torch.float64),
        "ones": torch.ones(shape, dtype=torch.float64),
        "uniform": torch.rand(shape, generator=g, dtype=torch.float64),
        "binary": (torch.rand(shape, generator=g) > 0.5).to(torch.float64),
    }


@pytest.mark.parametrize("op", _image_valued(), ids=lambda op: type(op).__name__)
def test_measurement_lies_in_y_range(op) -> None:
    """``A(x)`` for ``x`` in [0, 1] (constant, uniform and binary images: the extremes of a
    non-negative normalised filter) stays in the declared range, up to float64 rounding."""
    lo, hi = op.y_range
    assert (lo, hi) == (0.0, 1.0)
    for name, x in _inputs().items():
        y = op(x)
        assert float(y.min()) >= lo - 1e-6, (name, float(y.min()))
        assert float(y.max()) <= hi + 1e-6, (name, float(y.max()))


def test_classes_that_declare_no_image_range() -> None:
    """A matrix product is a vector with no image range, and so is any composition it feeds."""
    assert Matrix.y_range is None
    m = Matrix(torch.eye(4))
    assert (m @ m).y_range is None
    assert (Identity() @ Identity()).y_range == (0.0, 1.0)
    assert Composition.y_range == (0.0, 1.0)  # the class default; an instance states its own


@pytest.mark.parametrize("name", sorted(PUBLIC_CLASSES))
def test_every_class_declares_a_y_range(name: str) -> None:
    rng = PUBLIC_CLASSES[name].y_range
    assert rng is None or (isinstance(rng, tuple) and len(rng) == 2 and rng[0] < rng[1])
