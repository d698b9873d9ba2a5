"""Every bad parameter of an operator constructor or generator raises a PnPError subclass (also a
ValueError) whose message names the parameter and the bad value; inputs that do not fit an
operator at call time raise a ShapeError naming the shapes (never a raw torch error)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pnpdiff.errors import OperatorError, PnPError, ShapeError, ValueRangeError
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
    UniformBlur,
    as_operator,
    box_mask,
    compose,
    downsample_taps,
    freeform_mask,
    from_deepinv,
    gaussian_kernel,
    motion_kernel,
    random_mask,
    to_deepinv,
    uniform_kernel,
)

NAN, INF = float("nan"), float("inf")
K3 = torch.ones(3, 3) / 9

# (id, call, parameter name, text of the bad value in the message)
CONSTRUCTOR_CASES = [
    # GaussianBlur / gaussian_kernel
    ("gauss-sigma-word", lambda: GaussianBlur("three"), "sigma", "'three'"),
    ("gauss-sigma-digit-string", lambda: GaussianBlur("4"), "sigma", "'4'"),
    ("gauss-sigma-bool", lambda: GaussianBlur(True), "sigma", "True"),
    ("gauss-sigma-nan", lambda: GaussianBlur(NAN), "sigma", "nan"),
    ("gauss-sigma-inf", lambda: GaussianBlur(INF), "sigma", "inf"),
    ("gauss-sigma-zero", lambda: GaussianBlur(0.0), "sigma", "0.0"),
    ("gauss-sigma-negative", lambda: GaussianBlur(-1.0), "sigma", "-1.0"),
    ("gauss-sigma-none", lambda: GaussianBlur(None), "sigma", "None"),
    ("gauss-sigma-triple", lambda: GaussianBlur((1.0, 2.0, 3.0)), "sigma", "(1.0, 2.0, 3.0)"),
    ("gauss-sigma-pair-neg", lambda: GaussianBlur((1.0, -2.0)), "sigma", "(1.0, -2.0)"),
    ("gauss-ksize-float", lambda: GaussianBlur(1.0, kernel_size=3.5), "kernel_size", "3.5"),
    ("gauss-ksize-string", lambda: GaussianBlur(1.0, kernel_size="5"), "kernel_size", "'5'"),
    ("gauss-ksize-zero", lambda: GaussianBlur(1.0, kernel_size=0), "kernel_size", "0"),
    ("gauss-ksize-bool", lambda: GaussianBlur(1.0, kernel_size=True), "kernel_size", "True"),
    ("gauss-ksize-pair-neg", lambda: GaussianBlur(1.0, kernel_size=(5, -3)), "kernel_size", "(5, -3)"),
    ("gauss-angle-string", lambda: GaussianBlur(1.0, angle="x"), "angle", "'x'"),
    ("gauss-angle-nan", lambda: GaussianBlur(1.0, angle=NAN), "angle", "nan"),
    ("gauss-boundary-unknown", lambda: GaussianBlur(1.0, boundary="x"), "boundary", "'x'"),
    ("gauss-boundary-none", lambda: GaussianBlur(1.0, boundary=None), "boundary", "None"),
    ("gk-sigma-word", lambda: gaussian_kernel("three"), "sigma", "'three'"),
    ("gk-size-float", lambda: gaussian_kernel(1.0, 3.5), "size", "3.5"),
    ("gk-dtype-int", lambda: gaussian_kernel(1.0, dtype=torch.int64), "dtype", "torch.int64"),
    ("gk-device-bad", lambda: gaussian_kernel(1.0, device="nodevice"), "device", "'nodevice'"),
    # UniformBlur / uniform_kernel
    ("uniform-size-float", lambda: UniformBlur(2.5), "size", "2.5"),
    ("uniform-size-zero", lambda: UniformBlur(0), "size", "0"),
    ("uniform-size-string", lambda: UniformBlur("3"), "size", "'3'"),
    ("uniform-size-bool", lambda: UniformBlur(True), "size", "True"),
    ("uk-size-pair-zero", lambda: uniform_kernel((3, 0)), "size", "(3, 0)"),
    ("uk-size-pair-float", lambda: uniform_kernel((3.5, 3)), "size", "(3.5, 3)"),
    # MotionBlur / motion_kernel
    ("motion-size-float", lambda: MotionBlur(size=9.5), "size", "9.5"),
    ("motion-size-string", lambda: MotionBlur(size="9"), "size", "'9'"),
    ("motion-size-small", lambda: MotionBlur(size=2), "size", "2"),
    ("motion-intensity-high", lambda: MotionBlur(9, intensity=2.0), "intensity", "2.0"),
    ("motion-intensity-nan", lambda: MotionBlur(9, intensity=NAN), "intensity", "nan"),
    ("motion-intensity-string", lambda: MotionBlur(9, intensity="x"), "intensity", "'x'"),
    ("motion-seed-float", lambda: MotionBlur(9, seed=1.5), "seed", "1.5"),
    ("motion-seed-string", lambda: MotionBlur(9, seed="a"), "seed", "'a'"),
    ("motion-seed-bool", lambda: MotionBlur(9, seed=True), "seed", "True"),
    ("mk-generator-string", lambda: motion_kernel(9, generator="g"), "generator", "'g'"),
    # Blur
    ("blur-kernel-string", lambda: Blur("abc"), "kernel", "'abc'"),
    ("blur-kernel-1d", lambda: Blur(torch.ones(5)), "kernel", "(5,)"),
    ("blur-kernel-4d", lambda: Blur(torch.ones(1, 1, 3, 3)), "kernel", "(1, 1, 3, 3)"),
    ("blur-kernel-empty", lambda: Blur(torch.ones(0, 3)), "kernel", "(0, 3)"),
    ("blur-kernel-ragged", lambda: Blur([[1.0, 2.0], [3.0]]), "kernel", "[[1.0, 2.0], [3.0]]"),
    ("blur-kernel-nan", lambda: Blur(torch.tensor([[1.0, NAN]])), "kernel", "NaN"),
    ("blur-kernel-complex", lambda: Blur(torch.ones(3, 3, dtype=torch.complex64)), "kernel", "complex64"),
    ("blur-kernel-sum-zero", lambda: Blur(torch.tensor([[1.0, -1.0]])), "kernel", "sum is 0.0"),
    ("blur-kernel-all-zero", lambda: Blur(torch.zeros(3, 3)), "kernel", "sum is 0.0"),
    ("blur-kernel-channel-sum-zero", lambda: Blur(torch.stack([K3, K3 - K3.mean()])), "kernel", "sums are"),
    ("blur-boundary-unknown", lambda: Blur(K3, boundary="mirror"), "boundary", "'mirror'"),
    ("blur-boundary-int", lambda: Blur(K3, boundary=3), "boundary", "3"),
    ("blur-pinv-threshold-string", lambda: Blur(K3, pinv_threshold="x"), "pinv_threshold", "'x'"),
    ("blur-pinv-threshold-nan", lambda: Blur(K3, pinv_threshold=NAN), "pinv_threshold", "nan"),
    ("blur-svd-threshold-neg", lambda: Blur(K3, svd_threshold=-0.1), "svd_threshold", "-0.1"),
    ("blur-img-size-string", lambda: Blur(K3, img_size="ab"), "img_size", "'ab'"),
    ("blur-img-size-zero", lambda: Blur(K3, img_size=(0, 4)), "img_size", "(0, 4)"),
    ("blur-cg-tol-string", lambda: Blur(K3, cg_tol="x"), "cg_tol", "'x'"),
    ("blur-cg-max-iter-float", lambda: Blur(K3, cg_max_iter=2.5), "cg_max_iter", "2.5"),
    # Downsample / downsample_taps
    ("down-factor-float", lambda: Downsample(2.5), "factor", "2.5"),
    ("down-factor-string", lambda: Downsample("4"), "factor", "'4'"),
    ("down-factor-bool", lambda: Downsample(True), "factor", "True"),
    ("down-factor-nan", lambda: Downsample(NAN), "factor", "nan"),
    ("down-factor-inf", lambda: Downsample(INF), "factor", "inf"),
    ("down-factor-zero", lambda: Downsample(0), "factor", "0"),
    ("down-factor-negative", lambda: Downsample(-2), "factor", "-2"),
    ("down-filter-unknown", lambda: Downsample(2, filter="foo"), "filter", "'foo'"),
    ("down-filter-int", lambda: Downsample(2, filter=3), "filter", "3"),
    ("down-filter-3d", lambda: Downsample(2, filter=torch.ones(2, 3, 3)), "filter", "(2, 3, 3)"),
    ("down-filter-nan", lambda: Downsample(2, filter=torch.tensor([[1.0, NAN]])), "filter", "NaN"),
    ("down-filter-sum-zero", lambda: Downsample(2, filter=torch.tensor([[1.0, -1.0]])), "filter", "sum is 0.0"),
    ("down-boundary", lambda: Downsample(2, boundary="reflect"), "boundary", "'reflect'"),
    ("down-sigma-string", lambda: Downsample(2, filter="gaussian", sigma="x"), "sigma", "'x'"),
    ("down-sigma-inf", lambda: Downsample(2, filter="gaussian", sigma=INF), "sigma", "inf"),
    ("down-sigma-negative", lambda: Downsample(2, filter="gaussian", sigma=-1.0), "sigma", "-1.0"),
    ("down-sigma-unused", lambda: Downsample(2, filter="bicubic", sigma=1.0), "sigma", "1.0"),
    ("down-svd-threshold", lambda: Downsample(2, svd_threshold="x"), "svd_threshold", "'x'"),
    ("down-pinv-rtol", lambda: Downsample(2, pinv_rtol=-1.0), "pinv_rtol", "-1.0"),
    ("taps-factor-float", lambda: downsample_taps(2.5), "factor", "2.5"),
    ("taps-factor-zero", lambda: downsample_taps(0), "factor", "0"),
    ("taps-filter-unknown", lambda: downsample_taps(2, "lanczos"), "filter", "'lanczos'"),
    # Inpaint
    ("inpaint-mask-string", lambda: Inpaint("x"), "mask", "'x'"),
    ("inpaint-mask-none", lambda: Inpaint(None), "mask", "None"),
    ("inpaint-mask-1d", lambda: Inpaint(torch.ones(8)), "mask", "(8,)"),
    ("inpaint-mask-5d", lambda: Inpaint(torch.ones(1, 1, 1, 4, 4)), "mask", "(1, 1, 1, 4, 4)"),
    ("inpaint-mask-empty", lambda: Inpaint(torch.ones(0, 4)), "mask", "(0, 4)"),
    ("inpaint-mask-nan", lambda: Inpaint(torch.full((4, 4), NAN)), "mask", "NaN"),
    ("inpaint-mask-range", lambda: Inpaint(torch.full((4, 4), 2.0)), "mask", "to 2"),
    ("inpaint-mask-complex", lambda: Inpaint(torch.ones(4, 4, dtype=torch.complex64)), "mask", "complex64"),
    # Colorize
    ("colorize-weights-string", lambda: Colorize("abc"), "weights", "'abc'"),
    ("colorize-weights-scalar", lambda: Colorize(3), "weights", "3"),
    ("colorize-weights-bools", lambda: Colorize((True, False, True)), "weights", "(True, False, True)"),
    ("colorize-weights-2d", lambda: Colorize([[0.3, 0.3], [0.2, 0.2]]), "weights", "[[0.3, 0.3], [0.2, 0.2]]"),
    ("colorize-weights-nan", lambda: Colorize((0.3, NAN, 0.1)), "weights", "nan"),
    ("colorize-weights-zero", lambda: Colorize((0.0, 0.0, 0.0)), "weights", "(0.0, 0.0, 0.0)"),
    # Identity
    ("identity-cg-tol", lambda: Identity(cg_tol="x"), "cg_tol", "'x'"),
    ("identity-cg-max-iter", lambda: Identity(cg_max_iter=-1), "cg_max_iter", "-1"),
    # Matrix
    ("matrix-1d", lambda: Matrix(torch.zeros(3)), "matrix", "(3,)"),
    ("matrix-string", lambda: Matrix("abc"), "matrix", "'abc'"),
    ("matrix-ragged", lambda: Matrix([[1.0, 2.0], [3.0]]), "matrix", "[[1.0, 2.0], [3.0]]"),
    ("matrix-empty", lambda: Matrix(torch.zeros(0, 3)), "matrix", "(0, 3)"),
    ("matrix-nan", lambda: Matrix([[1.0, NAN]]), "matrix", "NaN"),
    ("matrix-complex", lambda: Matrix(torch.ones(2, 2, dtype=torch.complex64)), "matrix", "complex64"),
    ("matrix-input-shape-string", lambda: Matrix(torch.zeros(2, 4), input_shape="ab"), "input_shape", "'ab'"),
    ("matrix-input-shape-float", lambda: Matrix(torch.zeros(2, 4), input_shape=(2.5, 1.6)), "input_shape", "2.5"),
    ("matrix-input-shape-negative", lambda: Matrix(torch.zeros(2, 4), input_shape=(-2, -2)), "input_shape", "-2"),
    ("matrix-input-shape-product", lambda: Matrix(torch.zeros(2, 4), input_shape=(3, 2)), "input_shape", "(3, 2)"),
    ("matrix-svd-threshold", lambda: Matrix(torch.zeros(2, 4), svd_threshold="x"), "svd_threshold", "'x'"),
    ("matrix-rcond", lambda: Matrix(torch.zeros(2, 4), rcond="x"), "rcond", "'x'"),
    # PhaseRetrieval's declared image size
    ("phase-input-shape-string", lambda: PhaseRetrieval(2.0, input_shape="ab"), "input_shape", "'ab'"),
    ("phase-input-shape-1d", lambda: PhaseRetrieval(2.0, input_shape=(8,)), "input_shape", "(8,)"),
    ("phase-input-shape-zero", lambda: PhaseRetrieval(2.0, input_shape=(0, 8)), "input_shape", "(0, 8)"),
    ("phase-input-shape-float", lambda: PhaseRetrieval(2.0, input_shape=(8, 8.5)), "input_shape", "8.5"),
    # random_mask / box_mask / freeform_mask
    ("random-p-string", lambda: random_mask((8, 8), "x"), "p_missing", "'x'"),
    ("random-p-nan", lambda: random_mask((8, 8), NAN), "p_missing", "nan"),
    ("random-p-bool", lambda: random_mask((8, 8), True), "p_missing", "True"),
    ("random-p-negative", lambda: random_mask((8, 8), -0.1), "p_missing", "-0.1"),
    ("random-p-above-one", lambda: random_mask((8, 8), 1.5), "p_missing", "1.5"),
    ("random-shape-float", lambda: random_mask((8, 8.5), 0.5), "shape", "(8, 8.5)"),
    ("random-shape-int", lambda: random_mask(8, 0.5), "shape", "8"),
    ("random-shape-string", lambda: random_mask("ab", 0.5), "shape", "'ab'"),
    ("random-shape-1d", lambda: random_mask((8,), 0.5), "shape", "(8,)"),
    ("random-shape-zero", lambda: random_mask((0, 8), 0.5), "shape", "(0, 8)"),
    ("random-seed-string", lambda: random_mask((8, 8), 0.5, seed="x"), "seed", "'x'"),
    ("random-seed-float", lambda: random_mask((8, 8), 0.5, seed=1.5), "seed", "1.5"),
    ("random-generator-int", lambda: random_mask((8, 8), 0.5, generator=1), "generator", "1"),
    ("random-per-channel-string", lambda: random_mask((8, 8), 0.5, per_channel="no"), "per_channel", "'no'"),
    ("box-size-float", lambda: box_mask((8, 8), box_size=2.5), "box_size", "2.5"),
    ("box-size-string", lambda: box_mask((8, 8), box_size="4"), "box_size", "'4'"),
    ("box-size-zero", lambda: box_mask((8, 8), box_size=0), "box_size", "0"),
    ("box-size-triple", lambda: box_mask((8, 8), box_size=(1, 2, 3)), "box_size", "(1, 2, 3)"),
    ("box-size-too-big", lambda: box_mask((8, 8), box_size=9), "box_size", "9"),
    ("box-position-unknown", lambda: box_mask((8, 8), position="x"), "position", "'x'"),
    ("box-position-float", lambda: box_mask((8, 8), position=(1.5, 2)), "position", "(1.5, 2)"),
    ("box-position-short", lambda: box_mask((8, 8), position=(1,)), "position", "(1,)"),
    ("box-position-outside", lambda: box_mask((8, 8), box_size=4, position=(6, 0)), "position", "(6, 0)"),
    ("box-margin-negative", lambda: box_mask((8, 8), position="random", margin=-1), "margin", "-1"),
    ("box-margin-float", lambda: box_mask((8, 8), position="random", margin=1.5), "margin", "1.5"),
    ("box-margin-too-big", lambda: box_mask((8, 8), box_size=4, position="random", margin=3), "margin", "3"),
    ("box-seed-string", lambda: box_mask((8, 8), seed="x"), "seed", "'x'"),
    ("freeform-strokes-zero", lambda: freeform_mask((8, 8), max_strokes=0), "max_strokes", "0"),
    ("freeform-strokes-float", lambda: freeform_mask((8, 8), max_strokes=2.5), "max_strokes", "2.5"),
    ("freeform-strokes-string", lambda: freeform_mask((8, 8), max_strokes="3"), "max_strokes", "'3'"),
    ("freeform-vertices-one", lambda: freeform_mask((8, 8), max_vertices=1), "max_vertices", "1"),
    ("freeform-width-negative", lambda: freeform_mask((8, 8), max_width=-1.0), "max_width", "-1.0"),
    ("freeform-width-nan", lambda: freeform_mask((8, 8), max_width=NAN), "max_width", "nan"),
    ("freeform-seed-string", lambda: freeform_mask((8, 8), seed="x"), "seed", "'x'"),
    # compose / Composition / deepinv interop
    ("compose-non-operator", lambda: compose(Identity(), 1), "ops[1]", "1"),
    ("compose-strings", lambda: compose("a", "b"), "ops[0]", "'a'"),
    ("composition-outer", lambda: Composition(1, Identity()), "outer", "1"),
    ("composition-inner", lambda: Composition(Identity(), "b"), "inner", "'b'"),
    ("from-deepinv-int", lambda: from_deepinv(1), "physics", "1"),
    ("as-operator-string", lambda: as_operator("blur"), "operator", "'blur'"),
    ("as-operator-none", lambda: as_operator(None), "operator", "None"),
    ("to-deepinv-string", lambda: to_deepinv("blur"), "op", "'blur'"),
]


@pytest.mark.parametrize(
    ("call", "param", "shown"), [c[1:] for c in CONSTRUCTOR_CASES], ids=[c[0] for c in CONSTRUCTOR_CASES]
)
def test_bad_parameter_raises_operator_error(call, param, shown):
    with pytest.raises(PnPError) as info:
        call()
    err = info.value
    assert isinstance(err, OperatorError), type(err)
    assert isinstance(err, ValueError)
    msg = str(err)
    assert msg.startswith(f"{param} "), msg  # the name first: recipes turn it into operator.<name>
    assert shown in msg, msg
    assert "\n" not in msg


def test_compose_without_operators():
    with pytest.raises(OperatorError, match="at least one operator"):
        compose()


def test_legacy_error_classes_are_kept():
    """Errors that used to be ValueRangeError / ShapeError are still those, and now also OperatorError."""
    for call, cls in [
        (lambda: Downsample(2.5), ValueRangeError),
        (lambda: Colorize((0.0, 0.0, 0.0)), ValueRangeError),
        (lambda: Matrix([[1.0, NAN]]), ValueRangeError),
        (lambda: Matrix(torch.zeros(3)), ShapeError),
        (lambda: Inpaint(torch.ones(8)), ShapeError),
        (lambda: random_mask((8,), 0.5), ShapeError),
    ]:
        with pytest.raises(cls) as info:
            call()
        assert isinstance(info.value, OperatorError)


def test_from_deepinv_rejects_nonlinear_physics_and_bad_prox():
    dinv = pytest.importorskip("deepinv")
    nonlinear = dinv.physics.Physics(A=lambda x: x**2)
    with pytest.raises(OperatorError, match="physics must be .*nonlinear"):
        from_deepinv(nonlinear)
    with pytest.raises(OperatorError, match="prox must be one of 'auto', 'deepinv', 'cg', got 'x'"):
        from_deepinv(dinv.physics.Denoising(), prox="x")


def test_cuda_generator_is_refused_if_available():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    with pytest.raises(OperatorError, match="generator must be a CPU"):
        random_mask((8, 8), 0.5, generator=torch.Generator(device="cuda"))


# ---------------------------------------------------------------------------------------------
# call time: inputs that cannot fit
# ---------------------------------------------------------------------------------------------
def _z(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype)


CALL_CASES = [
    ("inpaint-mask-size", lambda: Inpaint(torch.ones(32, 32))(_z(1, 3, 64, 64)), ["(1, 1, 32, 32)", "(1, 3, 64, 64)"]),
    ("matrix-input-size", lambda: Matrix(torch.zeros(2, 4))(_z(1, 5)), ["(B, 4)", "(1, 5)"]),
    ("matrix-measurement-size", lambda: Matrix(torch.zeros(2, 4)).adjoint(_z(1, 3)), ["(B, 2)", "(1, 3)"]),
    ("blur-reflect-kernel-too-big", lambda: Blur(torch.ones(9, 9), boundary="reflect")(_z(1, 1, 4, 4)),
     ["(9, 9)", "(4, 4)"]),
    ("blur-empty-image", lambda: GaussianBlur(1.0, boundary="zeros")(_z(1, 1, 0, 0)), ["(1, 1, 0, 0)"]),
    ("blur-empty-batch", lambda: GaussianBlur(1.0)(_z(0, 1, 8, 8)), ["(0, 1, 8, 8)"]),
    ("blur-integer-image", lambda: GaussianBlur(1.0)(_z(1, 1, 8, 8, dtype=torch.int64)), ["int64", "(1, 1, 8, 8)"]),
    ("downsample-integer-image", lambda: Downsample(2)(_z(1, 1, 8, 8, dtype=torch.uint8)), ["uint8", "(1, 1, 8, 8)"]),
    ("phase-input-size", lambda: PhaseRetrieval(2.0, input_shape=(8, 8))(_z(1, 1, 8, 9)), ["(8, 8)", "(1, 1, 8, 9)"]),
    ("phase-input-channels", lambda: PhaseRetrieval(2.0, input_shape=(3, 8, 8))(_z(1, 1, 8, 8)),
     ["(3, 8, 8)", "(1, 1, 8, 8)"]),
    ("matrix-integer-input", lambda: Matrix(torch.zeros(2, 4))(_z(1, 4, dtype=torch.int64)), ["int64", "(1, 4)"]),
    ("blur-circular-prox", lambda: GaussianBlur(1.0).prox(_z(1, 1, 8, 8), _z(1, 1, 6, 6), 0.1),
     ["(1, 1, 6, 6)", "(1, 1, 8, 8)"]),
    ("blur-zeros-prox", lambda: GaussianBlur(1.0, boundary="zeros").prox(_z(1, 1, 8, 8), _z(1, 1, 6, 6), 0.1),
     ["(1, 1, 6, 6)", "(1, 1, 8, 8)"]),
    ("blur-reflect-prox-batch", lambda: GaussianBlur(1.0, boundary="reflect").prox(_z(2, 1, 8, 8), _z(3, 1, 8, 8), 0.1),
     ["(3, 1, 8, 8)", "(2, 1, 8, 8)"]),
    ("downsample-prox", lambda: Downsample(2).prox(_z(1, 1, 8, 8), _z(1, 1, 3, 3), 0.1),
     ["(1, 1, 3, 3)", "(1, 1, 8, 8)", "(1, 1, 4, 4)"]),
    ("downsample-prox-channels", lambda: Downsample(2).prox(_z(1, 1, 8, 8), _z(1, 3, 4, 4), 0.1),
     ["(1, 3, 4, 4)", "(1, 1, 4, 4)"]),
    ("colorize-prox", lambda: Colorize().prox(_z(1, 3, 4, 4), _z(1, 1, 5, 5), 0.1), ["(1, 1, 5, 5)", "(1, 1, 4, 4)"]),
    ("identity-prox", lambda: Identity().prox(_z(1, 3, 4, 4), _z(1, 3, 5, 5), 0.1), ["(1, 3, 5, 5)", "(1, 3, 4, 4)"]),
    ("matrix-prox-batch", lambda: Matrix(torch.zeros(2, 4)).prox(_z(3, 4), _z(2, 2), 0.1), ["(2, 2)", "(3, 4)"]),
    ("inpaint-prox-channels", lambda: Inpaint(torch.ones(4, 4)).prox(_z(1, 1, 4, 4), _z(1, 3, 4, 4), 0.1),
     ["(1, 3, 4, 4)", "(1, 1, 4, 4)"]),
    ("composition-prox-cg", lambda: compose(Downsample(2), GaussianBlur(1.0)).prox(_z(1, 1, 8, 8), _z(1, 1, 2, 2), 0.1),
     ["(1, 1, 2, 2)", "(1, 1, 8, 8)"]),
    ("blur-singular-values-shape", lambda: GaussianBlur(1.0).singular_values((0, 0)), ["(0, 0)"]),
    ("prox-rho-per-sample-length", lambda: GaussianBlur(1.0).prox(_z(2, 1, 8, 8), _z(2, 1, 8, 8), torch.ones(3)),
     ["(3,)", "(2)"]),
]


@pytest.mark.parametrize(("call", "shapes"), [c[1:] for c in CALL_CASES], ids=[c[0] for c in CALL_CASES])
def test_input_that_does_not_fit_raises_shape_error(call, shapes):
    with pytest.raises(PnPError) as info:
        call()
    err = info.value
    assert isinstance(err, ShapeError), type(err)
    assert isinstance(err, ValueError)
    for s in shapes:
        assert s in str(err), str(err)


@pytest.mark.parametrize("rho", ["x", NAN, -1.0, None])
def test_prox_rho_must_be_a_non_negative_number(rho):
    with pytest.raises(OperatorError, match=r"^rho must be a non-negative number, got"):
        GaussianBlur(1.0).prox(_z(1, 1, 8, 8), _z(1, 1, 8, 8), rho)


# ---------------------------------------------------------------------------------------------
# valid edge cases that keep working
# ---------------------------------------------------------------------------------------------
def test_numpy_scalars_are_python_numbers():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(GaussianBlur(np.float32(1.5), kernel_size=np.int64(7))(x), GaussianBlur(1.5, kernel_size=7)(x))
    assert torch.equal(UniformBlur(np.int32(3))(x), UniformBlur(3)(x))
    assert torch.equal(Downsample(np.int64(2))(x), Downsample(2)(x))
    motion = MotionBlur(np.int64(9), np.float64(0.3), seed=np.int64(4))
    assert torch.equal(motion.kernel, MotionBlur(9, 0.3, seed=4).kernel)
    assert torch.equal(random_mask((8, 8), np.float64(0.5), seed=np.int64(1)), random_mask((8, 8), 0.5, seed=1))
    assert torch.equal(box_mask((8, 8), box_size=np.int64(4)), box_mask((8, 8), box_size=4))
    assert torch.equal(random_mask(np.array([8, 8]), 0.5), random_mask((8, 8), 0.5))
    assert torch.equal(GaussianBlur(torch.tensor(1.5)).kernel, GaussianBlur(1.5).kernel)


def test_integral_floats_are_exact_integers():
    assert Downsample(2.0).factor == 2
    assert uniform_kernel((3.0, 5)).shape == (3, 5)
    assert GaussianBlur(1.0, kernel_size=5.0).kernel.shape[-2:] == (5, 5)


def test_sigma_pair_and_boundary_names():
    k = GaussianBlur((1.0, 2.0), kernel_size=(7, 9), angle=30).kernel
    assert k.shape == (1, 7, 9)
    assert torch.equal(GaussianBlur([1.0, 2.0]).kernel, GaussianBlur((1.0, 2.0)).kernel)
    assert torch.equal(GaussianBlur(torch.tensor([1.0, 2.0])).kernel, GaussianBlur((1.0, 2.0)).kernel)
    for b in ("circular", "reflect", "zeros"):
        assert GaussianBlur(1.0, boundary=b).boundary == b
    assert Blur(K3, boundary="constant").boundary == "zeros"


def test_other_valid_inputs():
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert Blur([[0.25, 0.5, 0.25]])(x).shape == x.shape  # nested lists
    assert Blur(torch.ones(3, 3, dtype=torch.bool)).kernel.dtype == torch.get_default_dtype()
    assert Blur(torch.tensor([[2.0, -1.0]]))(x).shape == x.shape  # not normalised, not non-negative
    assert Downsample(2, filter=np.ones((2, 2)) / 4)(x).shape == (2, 3, 4, 4)
    assert Inpaint([[1, 0], [0, 1]]).mask.shape == (1, 1, 2, 2)
    assert Inpaint(torch.ones(4, 4, dtype=torch.bool)).binary
    assert Colorize(torch.tensor([[0.3, 0.6, 0.1]])).channels == 3  # one non-singleton axis
    assert Colorize([1.0]).channels == 1
    assert Matrix(torch.ones(2, 2, dtype=torch.bool)).matrix.dtype == torch.get_default_dtype()
    assert Matrix(torch.zeros(2, 12), input_shape=torch.Size([3, 4])).input_shape == (3, 4)
    assert MotionBlur(9, seed=None).kernel.shape == (1, 9, 9)
    assert MotionBlur(9, intensity=0).kernel.shape == (1, 9, 9)
    assert random_mask((8, 8), 0).all() and not random_mask((8, 8), 1).any()
    assert random_mask((8, 8), 0.5, per_channel=np.bool_(True)).shape == (8, 8)
    g = torch.Generator().manual_seed(3)
    assert torch.equal(random_mask((8, 8), 0.5, generator=g), random_mask((8, 8), 0.5, seed=3))
    assert box_mask((8, 8), box_size=(2, 3), position=(0, 5)).sum() == 64 - 6
    assert freeform_mask((8, 8), max_width=2).shape == (8, 8)
    assert gaussian_kernel(1.0, device=torch.device("cpu"), dtype=torch.float16).dtype == torch.float16
    # prox: a measurement with batch 1 broadcasts over z, a (B,) rho tensor is per sample
    op = GaussianBlur(1.0)
    z = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    y = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    for boundary in ("circular", "reflect", "zeros"):
        op = GaussianBlur(1.0, boundary=boundary)
        one = op.prox(z, y, 0.5)  # circular: used to fail inside torch (in-place broadcast)
        assert one.shape == (2, 1, 8, 8)
        torch.testing.assert_close(one, op.prox(z, y.expand(2, -1, -1, -1), 0.5), rtol=0, atol=1e-6)
    assert op.prox(z, y.expand(2, -1, -1, -1), torch.tensor([0.5, 0.1])).shape == (2, 1, 8, 8)
    assert Identity().prox(z, z, 0).shape == z.shape
