"""Calibration without ground truth (:mod:`pnpdiff.calibrate`) against closed forms.

Every reference here is computed independently of the module: dense float64 matrices built in
the test (the blur's matrix from its impulse responses), closed-form expected errors of linear
estimators on Gaussian problems, and the exact divergences of diagonal linear maps and of
soft-thresholding. Unbiasedness is checked as ``|mean - exact| < 4 SE`` over many noise draws (a
false alarm has probability ~6e-5); the draws are batched, so the whole file runs in seconds.
"""

from __future__ import annotations

import math

import pytest
import torch

from pnpdiff import calibrate
from pnpdiff.errors import NonFiniteError, OperatorError, PnPError, ShapeError, ValueRangeError
from pnpdiff.operators import Blur, Identity, Inpaint, Matrix

D = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _unbiased(samples: torch.Tensor, exact: float, k: float = 4.0) -> None:
    """``samples`` (one per noise draw) average to ``exact`` within ``k`` standard errors."""
    mean = float(samples.mean())
    se = float(samples.std()) / math.sqrt(samples.numel())
    assert abs(mean - exact) < k * se, f"mean {mean:.6g} vs exact {exact:.6g} (SE {se:.3g})"


# -- SURE for denoising (A = I) ----------------------------------------------------------------
def _wiener_problem(b: int = 2000, sigma: float = 0.1):
    c = torch.linspace(0.002, 0.2, 64, dtype=D).view(1, 1, 8, 8)  # diagonal prior covariance
    g = _gen(1)
    x = c.sqrt() * torch.randn(b, 1, 8, 8, generator=g, dtype=D)
    y = x + sigma * torch.randn(b, 1, 8, 8, generator=g, dtype=D)
    w = c / (c + sigma**2)  # the Wiener (posterior-mean) filter of this prior
    return c, x, y, w, sigma


def test_sure_denoise_is_unbiased_for_the_wiener_filter():
    c, x, y, w, sigma = _wiener_problem()
    est = calibrate.sure_denoise(y, lambda v: w * v, sigma, probes=2, generator=_gen(2))
    # Bayes risk of the Wiener filter, per pixel: mean of c sigma^2 / (c + sigma^2)
    exact = float((c * sigma**2 / (c + sigma**2)).mean())
    _unbiased(est.estimate, exact)
    # and per draw it tracks the true error (same expectation, conditionally on x)
    _unbiased(est.estimate - ((w * y - x) ** 2).flatten(1).mean(1), 0.0)
    assert est.calls == 3 and est.kind == "denoise" and est.estimate.dtype == D
    assert est.estimate.shape == (y.shape[0],)


def test_mc_divergence_of_a_linear_map_is_its_trace():
    _, _, y, w, _ = _wiener_problem(b=4)
    tr = float(w.sum())
    # Rademacher probes: b^T W b = tr W exactly for a diagonal W
    div = calibrate.mc_divergence(lambda v: w * v, y, eps=1e-2, probes=2, generator=_gen(3))
    assert torch.allclose(div.value, torch.full((4,), tr, dtype=D), rtol=1e-10)
    assert torch.allclose(div.stderr, torch.zeros(4, dtype=D), atol=1e-10)
    assert div.calls == 3
    # Gaussian probes: unbiased, spread 2 sum W^2 per probe
    k = 100
    div = calibrate.mc_divergence(lambda v: w * v, y, eps=1e-2, probes=k, generator=_gen(4), noise="gaussian")
    se_exact = math.sqrt(2 * float((w**2).sum()) / k)
    assert ((div.value - tr).abs() < 4 * se_exact).all(), (div.value, tr, se_exact)
    assert torch.allclose(div.stderr, torch.full((4,), se_exact, dtype=D), rtol=0.4)
    # a dense (non-diagonal) map: trace of the matrix
    m = torch.randn(64, 64, generator=_gen(5), dtype=D)
    dense = calibrate.mc_divergence(lambda v: (v.flatten(1) @ m.T).view_as(v), y, eps=1e-2, probes=k,
                                    generator=_gen(6))
    sym = m + m.T  # Rademacher: var(b^T M b) = sum_{i<j} (M_ij + M_ji)^2
    spread = math.sqrt(float((sym**2).sum() - (sym.diag() ** 2).sum()) / 2 / k)
    assert ((dense.value - float(m.trace())).abs() < 4 * spread).all()
    # one probe gives no standard error
    one = calibrate.mc_divergence(lambda v: w * v, y, eps=1e-2, probes=1, fy=w * y)
    assert one.calls == 1 and bool(one.stderr.isnan().all())


def _soft(v: torch.Tensor, t: float) -> torch.Tensor:
    return v.sign() * (v.abs() - t).clamp_min(0)


def test_sure_of_soft_thresholding_is_unbiased_and_its_divergence_counts_the_nonzeros():
    b, sigma, t = 3000, 0.1, 0.15
    g = _gen(7)
    scale = torch.linspace(0.0, 0.4, 64, dtype=D).view(1, 1, 8, 8)  # sparse-ish Laplace signal
    u = torch.rand(b, 1, 8, 8, generator=g, dtype=D).clamp(1e-12, 1 - 1e-12)
    x = -scale * torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs())  # Laplace by inversion
    y = x + sigma * torch.randn(b, 1, 8, 8, generator=g, dtype=D)

    def f(v):
        return _soft(v, t)

    div = calibrate.mc_divergence(f, y[:50], eps=1e-7, probes=1, generator=_gen(8))
    nnz = (y[:50].abs() > t).flatten(1).sum(1).to(D)
    assert torch.equal(div.value, nnz) or torch.allclose(div.value, nnz, atol=1e-6)

    est = calibrate.sure_denoise(y, f, sigma, probes=2, generator=_gen(9))
    mse = ((f(y) - x) ** 2).flatten(1).mean(1)
    _unbiased(est.estimate - mse, 0.0)


# -- predicted and projected SURE on linear Gaussian problems ----------------------------------
def _tikhonov(a: torch.Tensor, r: float) -> torch.Tensor:
    n = a.shape[1]
    return torch.linalg.solve(a.T @ a + r * torch.eye(n, dtype=D), a.T)


def _projection(a: torch.Tensor, rcond: float) -> torch.Tensor:
    _, s, vh = torch.linalg.svd(a, full_matrices=True)
    v = vh[: s.numel()][s > rcond * s.max()]
    return v.T @ v


def _matrix_problem():
    g = _gen(10)
    q1, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=D))
    q2, _ = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=D))
    s = torch.tensor([2.0, 1.5, 1.0, 0.6, 0.3, 0.05], dtype=D)  # 0.05 < 0.1 s_max: outside P
    a = q1 @ torch.diag(s) @ q2[:6]
    # a large component on the dropped direction: a projection that kept it would see its error
    x = torch.randn(1, 10, generator=g, dtype=D) + 2 * q2[5]
    return a, x


def _linear_gaussian_check(op, a, x, r, sigma, b, rcond, f_of):
    """Predicted and projected SURE of ``x_hat = R y`` vs their closed forms (dense ``a``)."""
    m, n = a.shape
    rr = _tikhonov(a, r)
    e = rr @ a - torch.eye(n, dtype=D)  # x_hat - x = E x + R n
    xv = x.flatten()
    pred_exact = (float(((a @ e @ xv) ** 2).sum()) + sigma**2 * float(torch.trace(a @ rr @ rr.T @ a.T))) / m
    p = _projection(a, rcond)
    proj_exact = (float(((p @ e @ xv) ** 2).sum()) + sigma**2 * float(torch.trace(p @ rr @ rr.T @ p))) / n
    g = _gen(11)
    ax = (a @ xv).view(1, *op(x).shape[1:])
    y = ax + sigma * torch.randn(b, *ax.shape[1:], generator=g, dtype=D)
    f = f_of(rr)
    pred = calibrate.sure_predicted(y, op, f, sigma, probes=2, generator=_gen(12))
    _unbiased(pred.estimate, pred_exact)
    proj = calibrate.sure_projected(y, op, f, sigma, probes=2, rcond=rcond, generator=_gen(13))
    _unbiased(proj.estimate, proj_exact)
    assert pred.kind == "predicted" and proj.kind == "projected" and proj.calls == 3
    # the true projected error of each draw has the same mean
    err = f(y).reshape(b, n) - xv
    _unbiased(proj.estimate - ((err @ p) ** 2).sum(1) / n, 0.0)


def test_predicted_and_projected_sure_of_tikhonov_with_a_matrix():
    a, x = _matrix_problem()
    op = Matrix(a)

    def f_of(rr):
        return lambda v: v @ rr.T

    _linear_gaussian_check(op, a, x, r=0.1, sigma=0.1, b=4000, rcond=0.1, f_of=f_of)


def test_predicted_and_projected_sure_of_tikhonov_with_a_circular_blur():
    k = torch.tensor([[0.0, 0.1, 0.0], [0.1, 0.5, 0.2], [0.0, 0.1, 0.0]], dtype=D)
    op = Blur(k, boundary="circular")
    assert op.has_svd
    basis = torch.eye(64, dtype=D).view(64, 1, 8, 8)
    a = op(basis).reshape(64, 64).T  # column j = A e_j, built from impulse responses
    s = torch.linalg.svdvals(a)
    # a threshold in the middle of a gap of the spectrum, so P is the same for the test and the module
    lo, hi = s[s < 0.5 * s.max()].max(), s[s >= 0.5 * s.max()].min()
    rcond = float((lo + hi) / 2 / s.max())
    x = torch.rand(1, 1, 8, 8, generator=_gen(14), dtype=D)

    def f_of(rr):
        return lambda v: op.prox(torch.zeros_like(v), v, 0.05)  # Tikhonov through the FFT closed form

    # the FFT Tikhonov is the dense one
    y0 = torch.randn(2, 1, 8, 8, generator=_gen(15), dtype=D)
    assert torch.allclose(f_of(None)(y0).reshape(2, 64), y0.reshape(2, 64) @ _tikhonov(a, 0.05).T, atol=1e-10)
    _linear_gaussian_check(op, a, x, r=0.05, sigma=0.05, b=3000, rcond=rcond, f_of=f_of)


# -- the discrepancy principle -----------------------------------------------------------------
def test_discrepancy_matches_its_closed_form_and_select_picks_the_ratio_closest_to_tau():
    g = _gen(20)
    m, n, sx, sigma = 20, 30, 0.5, 0.1
    q1, _ = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=D))
    q2, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=D))
    s = torch.logspace(0, -2, m, dtype=D)
    a = q1 @ torch.diag(s) @ q2[:m]
    op = Matrix(a)
    b = 4000
    x = sx * torch.randn(b, n, generator=g, dtype=D)
    y = x @ a.T + sigma * torch.randn(b, m, generator=g, dtype=D)
    for r in (1e-3, 1e-2, 0.1):
        x_hat = y @ _tikhonov(a, r).T
        ratio = calibrate.discrepancy(y, op, x_hat, sigma)
        # E||y - A x_hat||^2 = sum_i (r / (s_i^2 + r))^2 (sx^2 s_i^2 + sigma^2), over the m singular values
        exact = float(((r / (s**2 + r)) ** 2 * (sx**2 * s**2 + sigma**2)).sum()) / (m * sigma**2)
        _unbiased(ratio, exact)
    # select: the ratio closest to tau, image by image
    rs = [1e-4, 1e-3, 1e-2, 3e-2, 0.1, 1.0]
    calls = []

    def run(v, opts):
        calls.append(1)
        return v @ _tikhonov(a, opts["r"]).T

    yb = y[:16]
    cal = calibrate.select(yb, op, sigma, [{"r": r} for r in rs], run, criterion="discrepancy")
    ratios = torch.stack([((yb - yb @ _tikhonov(a, r).T @ a.T) ** 2).sum(1) / (m * sigma**2) for r in rs])
    want = (ratios - 1.0).abs().argmin(0)
    assert cal.index == want.tolist() and len(set(cal.index)) > 1
    assert torch.allclose(cal.scores, ratios) and torch.allclose(cal.discrepancy, ratios)
    assert cal.calls == len(rs) == len(calls) and cal.criterion == "discrepancy"
    for i, j in enumerate(cal.index):
        assert torch.allclose(cal.x_hat[i], yb[i] @ _tikhonov(a, rs[j]).T)
    assert "\n" not in cal.reason and "tau=1" in cal.reason
    # another tau moves the choice the way the closed form says
    cal2 = calibrate.select(yb, op, sigma, [{"r": r} for r in rs], run, criterion="discrepancy", tau=0.5)
    assert cal2.index == (ratios - 0.5).abs().argmin(0).tolist()


def test_discrepancy_of_a_mask_counts_only_the_observed_entries():
    b, sigma = 64, 0.05
    g = _gen(21)
    mask = (torch.rand(1, 1, 16, 16, generator=g) < 0.4).to(D)  # 40 % observed, shared by 3 channels
    op = Inpaint(mask)
    x = torch.rand(b, 3, 16, 16, generator=g, dtype=D)
    noise = sigma * torch.randn(b, 3, 16, 16, generator=g, dtype=D)
    m = 3 * float(mask.sum())
    for y in (op(x) + noise, op(x + noise)):  # noise everywhere (a recipe's y), or masked too
        ratio = calibrate.discrepancy(y, op, x, sigma)  # the truth: expected ratio 1
        assert abs(float(ratio.mean()) - 1.0) < 4 * math.sqrt(2 / m / b), float(ratio.mean())


# -- select ------------------------------------------------------------------------------------
def _shrinkage_problem():
    sigma = 0.05
    g = _gen(30)
    c = torch.tensor([sigma**2 / 4, 4 * sigma**2], dtype=D).view(2, 1, 1, 1)  # best a: 0.2 and 0.8
    x = c.sqrt() * torch.randn(2, 1, 32, 32, generator=g, dtype=D)
    y = x + sigma * torch.randn(2, 1, 32, 32, generator=g, dtype=D)
    return x, y, sigma


def test_select_picks_the_lowest_true_mse_per_image_and_counts_its_calls():
    x, y, sigma = _shrinkage_problem()
    cands = [{"a": 0.2}, {"a": 0.5}, {"a": 0.8}]
    calls = []

    def run(v, opts):
        calls.append(opts)
        return opts["a"] * v

    cal = calibrate.select(y, Identity(), sigma, cands, run, probes=2, generator=_gen(31))
    true = torch.stack([((c["a"] * y - x) ** 2).flatten(1).mean(1) for c in cands])
    assert cal.index == true.argmin(0).tolist() == [0, 2]
    assert cal.options == [{"a": 0.2}, {"a": 0.8}] and cal.criterion == "denoise"
    assert cal.calls == len(cands) * (1 + 2) == len(calls)
    assert torch.equal(cal.x_hat[0], 0.2 * y[0]) and torch.equal(cal.x_hat[1], 0.8 * y[1])
    assert cal.scores.shape == cal.stderr.shape == cal.discrepancy.shape == (3, 2)
    # the estimates are close to the true errors (n = 1024 pixels per image)
    assert torch.allclose(cal.scores, true, rtol=0.25)
    assert "\n" not in cal.reason and "image 0: chose a=0.2" in cal.reason and "image 1: chose a=0.8" in cal.reason
    one = calibrate.select(y[:1], Identity(), sigma, cands, run, probes=1)
    assert one.calls == 6 and one.reason.startswith("chose a=0.2: SURE ")


def test_select_gives_every_candidate_the_same_probes():
    x, y, sigma = _shrinkage_problem()
    k = torch.tensor([[0.1, 0.2, 0.1], [0.2, 0.4, 0.2], [0.1, 0.2, 0.1]], dtype=D) / 1.6
    blur = Blur(k, boundary="circular")

    def run(v, opts):
        return opts["a"] * blur(v)  # not diagonal: each probe gives another divergence sample

    cal = calibrate.select(y, Identity(), sigma, [{"a": 0.5}, {"a": 0.5}], run, probes=1)
    assert torch.equal(cal.scores[0], cal.scores[1]) and cal.index == [0, 0]  # a tie goes to the first


def test_select_resolves_sure_to_what_the_operator_allows():
    x, _, sigma = _shrinkage_problem()
    x = x[..., :8, :8]
    k = torch.tensor([[0.0, 0.2, 0.0], [0.2, 0.2, 0.2], [0.0, 0.2, 0.0]], dtype=D)
    cands = [{"r": 0.01}, {"r": 0.1}]

    def run_for(op):
        return lambda v, o: op.prox(torch.zeros_like(v), v, o["r"])

    circ, refl = Blur(k, boundary="circular"), Blur(k, boundary="reflect")
    assert calibrate.select(circ(x), circ, sigma, cands, run_for(circ)).criterion == "projected"
    assert calibrate.select(refl(x), refl, sigma, cands, run_for(refl)).criterion == "predicted"
    with pytest.raises(OperatorError, match="spectral"):
        calibrate.select(refl(x), refl, sigma, cands, run_for(refl), criterion="projected")
    with pytest.raises(OperatorError, match="spectral"):
        calibrate.sure_projected(refl(x), refl, lambda v: v, sigma)
    with pytest.raises(OperatorError, match="A = I"):
        calibrate.select(circ(x), circ, sigma, cands, run_for(circ), criterion="denoise")


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"candidates": []}, ValueRangeError, "at least one"),
        ({"candidates": {"a": 1}}, ValueRangeError, "list of dicts"),
        ({"candidates": [0.5]}, ValueRangeError, r"candidates\[0\]"),
        ({"criterion": "gcv"}, ValueRangeError, "criterion must be one of"),
        ({"probes": 0}, ValueRangeError, "probes must be an integer >= 1"),
        ({"probes": True}, ValueRangeError, "probes must be"),
        ({"probes": 2.0}, ValueRangeError, "probes must be"),
        ({"sigma_y": 0.0}, ValueRangeError, "sigma_y must be a number in"),
        ({"tau": -1.0}, ValueRangeError, "tau must be a positive number"),
        ({"eps": 0.0}, ValueRangeError, "eps must be a positive number"),
        ({"rcond": 1.0}, ValueRangeError, "rcond must be"),
        ({"run": "diffpir"}, ValueRangeError, "run must be a callable"),
    ],
)
def test_select_refuses_bad_inputs_on_one_line(kwargs, error, words):
    _, y, sigma = _shrinkage_problem()
    args = {"y": y, "operator": Identity(), "sigma_y": sigma, "candidates": [{"a": 0.5}],
            "run": lambda v, o: o["a"] * v}
    args.update(kwargs)
    with pytest.raises(error, match=words) as info:
        calibrate.select(**args)
    assert isinstance(info.value, PnPError) and "\n" not in str(info.value)


def test_select_refuses_a_run_that_changes_shape_or_is_not_finite():
    _, y, sigma = _shrinkage_problem()

    def shapes(v, o):
        return v if o["a"] == 1 else v[..., :-1]

    with pytest.raises(ShapeError, match="returned shape"):
        calibrate.select(y, Identity(), sigma, [{"a": 1}, {"a": 2}], shapes)
    with pytest.raises(NonFiniteError, match="NaN"):
        calibrate.select(y, Identity(), sigma, [{"a": 1}], lambda v, o: v * math.nan)
    with pytest.raises(ShapeError):
        calibrate.discrepancy(y, Identity(), y[..., :-1], sigma)
