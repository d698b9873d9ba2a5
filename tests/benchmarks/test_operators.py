"""Speed of Downsample / Colorize / Matrix, side by side with deepinv in the same run.

Run with::

    pytest -n 0 tests/benchmarks/test_operators.py --benchmark-enable --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds

Each ``benchmark.group`` holds one operation at one size, with the pnpdiff and deepinv rows (or
the two pnpdiff variants being compared: ``gram`` vs ``adjoint(forward)``, closed-form prox vs CG
at equal accuracy) next to each other, so the ratio is read off directly.
"""

from __future__ import annotations

import pytest
import torch

from pnpdiff.operators import Colorize, Downsample, Matrix

dinv = pytest.importorskip("deepinv")
pytest.importorskip("pytest_benchmark")

SHAPES = [(1, 3, 256, 256), (8, 3, 256, 256)]
FILTERS = ["bicubic", "box", "bilinear"]
FACTOR = 4


def _shape_id(shape) -> str:
    return "x".join(map(str, shape))


def _deepinv_downsampling(filt: str, shape):
    # deepinv has no "box" name: the block mean is the constant s x s kernel
    f = torch.full((1, 1, FACTOR, FACTOR), 1.0 / FACTOR**2) if filt == "box" else filt
    return dinv.physics.Downsampling(filter=f, factor=FACTOR, padding="circular", img_size=shape[1:])


def _data(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g)
    y = torch.rand(shape[0], shape[1], shape[2] // FACTOR, shape[3] // FACTOR, generator=g)
    return x, y


@pytest.mark.parametrize("impl", ["pnpdiff", "deepinv"])
@pytest.mark.parametrize("op_name", ["forward", "adjoint", "forward+adjoint"])
@pytest.mark.parametrize("filt", FILTERS)
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_downsample(benchmark, shape, filt, op_name, impl):
    benchmark.group = f"Downsample({FACTOR}, {filt}) {op_name} {_shape_id(shape)}"
    x, y = _data(shape)
    if impl == "pnpdiff":
        op = Downsample(FACTOR, filt)
        fwd, adj = op, op.adjoint
    else:
        phys = _deepinv_downsampling(filt, shape)
        fwd, adj = phys.A, phys.A_adjoint
    fn = {"forward": lambda: fwd(x), "adjoint": lambda: adj(y), "forward+adjoint": lambda: adj(fwd(x))}[op_name]
    with torch.no_grad():
        benchmark(fn)


@pytest.mark.parametrize("impl", ["pnpdiff gram", "pnpdiff adjoint(forward)", "deepinv A_adjoint_A"])
@pytest.mark.parametrize("filt", FILTERS)
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_downsample_gram(benchmark, shape, filt, impl):
    benchmark.group = f"Downsample({FACTOR}, {filt}) gram {_shape_id(shape)}"
    x, _ = _data(shape)
    op = Downsample(FACTOR, filt)
    phys = _deepinv_downsampling(filt, shape)
    fn = {
        "pnpdiff gram": lambda: op.gram(x),
        "pnpdiff adjoint(forward)": lambda: op.adjoint(op(x)),
        "deepinv A_adjoint_A": lambda: phys.A_adjoint_A(x),
    }[impl]
    with torch.no_grad():
        benchmark(fn)


@pytest.mark.parametrize("impl", ["pnpdiff closed form", "pnpdiff CG", "deepinv prox_l2"])
@pytest.mark.parametrize("filt", FILTERS)
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_downsample_prox(benchmark, shape, filt, impl):
    """Closed form vs CG at equal accuracy: CG runs to a 1e-6 relative residual, which the test
    checks reaches the closed form to 1e-4 (float32)."""
    benchmark.group = f"Downsample({FACTOR}, {filt}) prox {_shape_id(shape)}"
    x, y = _data(shape)
    rho = 0.05
    op = Downsample(FACTOR, filt, cg_tol=1e-6, cg_max_iter=1000)
    phys = _deepinv_downsampling(filt, shape)
    fn = {
        "pnpdiff closed form": lambda: op.prox(x, y, rho),
        "pnpdiff CG": lambda: op.prox_cg(x, y, rho),
        "deepinv prox_l2": lambda: phys.prox_l2(x, y, 1.0 / rho),  # deepinv's gamma = 1 / rho
    }[impl]
    with torch.no_grad():
        out = benchmark.pedantic(fn, rounds=3, iterations=1) if impl == "pnpdiff CG" else benchmark(fn)
        ref = op.prox(x, y, rho)
    if impl == "pnpdiff CG":  # deepinv's bicubic/bilinear grids are shifted: a different operator
        assert float((out - ref).norm() / ref.norm()) < 1e-4


@pytest.mark.parametrize("impl", ["pnpdiff", "deepinv"])
@pytest.mark.parametrize("op_name", ["forward", "adjoint", "prox"])
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_colorize(benchmark, shape, op_name, impl):
    benchmark.group = f"Colorize {op_name} {_shape_id(shape)}"
    x, _ = _data(shape)
    y = x[:, :1].clone()
    if impl == "pnpdiff":
        op = Colorize()
        fns = {"forward": lambda: op(x), "adjoint": lambda: op.adjoint(y), "prox": lambda: op.prox(x, y, 0.5)}
    else:
        phys = dinv.physics.Decolorize()
        fns = {"forward": lambda: phys.A(x), "adjoint": lambda: phys.A_adjoint(y),
               "prox": lambda: phys.prox_l2(x, y, 2.0)}
    with torch.no_grad():
        benchmark(fns[op_name])


@pytest.mark.parametrize("impl", ["pnpdiff closed form", "pnpdiff CG"])
@pytest.mark.parametrize("size", [(2, 8), (64, 256)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_matrix_prox(benchmark, size, impl):
    benchmark.group = f"Matrix {size[0]}x{size[1]} prox (B=64)"
    g = torch.Generator().manual_seed(0)
    op = Matrix(torch.randn(*size, generator=g, dtype=torch.float64), cg_tol=1e-10, cg_max_iter=1000)
    z = torch.randn(64, size[1], generator=g, dtype=torch.float64)
    y = torch.randn(64, size[0], generator=g, dtype=torch.float64)
    op.prox(z, y, 0.1)  # SVD computed once, outside the timing
    fn = (lambda: op.prox(z, y, 0.1)) if impl == "pnpdiff closed form" else (lambda: op.prox_cg(z, y, 0.1))
    benchmark(fn)
