"""Speed of the blur and inpainting operators, side by side with deepinv on the same input.

Run (benchmarks are disabled by default in ``pyproject.toml``)::

    pytest -n 0 tests/benchmarks/test_blur_inpaint.py --benchmark-enable --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds

Groups are named ``<operator>-<map>-<shape>`` (e.g. ``blur-circular-fwd+adj-8x3x256``) so that the
pnpdiff and deepinv rows of one measurement sit together. Compared maps: ``fwd``, ``adj``,
``fwd+adj``, ``gram`` (pnpdiff's fused ``gram`` against its own ``adjoint(forward)`` and deepinv's
``A_adjoint(A)``) and ``prox`` (closed form against the conjugate-gradient fallback ``prox_cg``
run to the same accuracy -- checked before timing -- and deepinv's ``prox_l2`` with
``gamma = 1 / rho``). For the reflect boundary pnpdiff's prox is conjugate gradient preconditioned
by the circular closed form, ``pnpdiff-cg`` plain CG and deepinv plain CG; all three use deepinv's
stopping rule (``tol``, ``max_iter`` of its ``LinearPhysics``) and are checked against a tight
solve before timing. No test asserts a time.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from pnpdiff.operators import Blur, GaussianBlur, Inpaint, random_mask

dinv = pytest.importorskip("deepinv")

SHAPES = {"1x3x256": (1, 3, 256, 256), "8x3x256": (8, 3, 256, 256)}
RHO = 0.05  # a typical DiffPIR data weight: CG needs a few dozen iterations
SIGMA = 3.0  # Gaussian blur of the deblurring recipe (19x19 kernel)


def _operators(kind: str):
    if kind == "inpaint":
        mask = random_mask((3, 256, 256), 0.7, seed=0)
        return Inpaint(mask), dinv.physics.Inpainting(img_size=(3, 256, 256), mask=mask)
    boundary = kind.split("-")[1]
    op = GaussianBlur(SIGMA, boundary=boundary)
    k = op.kernel.float()[None]  # (1, 1, 19, 19)
    ref = (
        dinv.physics.BlurFFT(img_size=(3, 256, 256), filter=k)
        if boundary == "circular"
        else dinv.physics.Blur(filter=k, padding=boundary)
    )
    return op, ref


def _maps(kind: str, op, ref, x: torch.Tensor, y: torch.Tensor) -> dict:
    gamma = 1.0 / RHO
    maps = {
        ("fwd", "pnpdiff"): lambda: op(x),
        ("fwd", "deepinv"): lambda: ref.A(x),
        ("adj", "pnpdiff"): lambda: op.adjoint(y),
        ("adj", "deepinv"): lambda: ref.A_adjoint(y),
        ("fwd+adj", "pnpdiff"): lambda: op.adjoint(op(x)),
        ("fwd+adj", "deepinv"): lambda: ref.A_adjoint(ref.A(x)),
        ("gram", "pnpdiff"): lambda: op.gram(x),
        ("gram", "pnpdiff-adjoint(forward)"): lambda: op.adjoint(op(x)),
        ("gram", "deepinv"): lambda: ref.A_adjoint(ref.A(x)),
        ("prox", "pnpdiff"): lambda: op.prox(x, y, RHO),
        ("prox", "pnpdiff-cg"): lambda: op.prox_cg(x, y, RHO),
        ("prox", "deepinv"): lambda: ref.prox_l2(x, y, gamma),
    }
    if kind == "inpaint":
        maps.pop(("prox", "pnpdiff-cg"))
    return maps


CASES = [
    (kind, shape, m, impl)
    for kind in ("blur-circular", "blur-reflect", "inpaint")
    for shape in SHAPES
    for (m, impl) in _maps(kind, None, None, None, None)
    if not (kind == "inpaint" and (m, impl) == ("prox", "pnpdiff-cg"))
]


@pytest.mark.parametrize(("kind", "shape", "which", "impl"), CASES, ids=["-".join(c) for c in CASES])
def test_operator_speed(benchmark, kind, shape, which, impl):
    torch.manual_seed(0)
    x = torch.rand(SHAPES[shape])
    op, ref = _operators(kind)
    if kind == "blur-reflect":  # both sides run CG: same stopping rule as deepinv's defaults
        op.cg_tol, op.cg_max_iter = ref.tol, ref.max_iter
    y = op(x) + 0.02 * torch.randn_like(x)
    fn = _maps(kind, op, ref, x, y)[(which, impl)]
    if which == "prox" and (impl != "pnpdiff" or kind == "blur-reflect"):
        # equal accuracy: the iterative solution must match the exact one
        exact = op.prox(x, y, RHO)
        if kind == "blur-reflect":  # no closed form: reference = a tight PCG solve (1e-6)
            exact = Blur(op.kernel[0], boundary="reflect", cg_tol=1e-6, cg_max_iter=300).prox(x, y, RHO)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            err = float((fn() - exact).norm() / exact.norm())
        assert err < 1e-3, f"{impl} prox is not as accurate as the closed form (rel. error {err:.1e})"
    benchmark.group = f"{kind}-{which}-{shape}"
    benchmark.extra_info.update(impl=impl, kind=kind, map=which, shape=shape)
    slow = which == "prox" and impl != "pnpdiff" or (kind == "blur-reflect" and which == "prox")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark.pedantic(fn, rounds=5 if slow else 7, warmup_rounds=1, iterations=1)
