"""Issue 14's table: posterior samplers on the 25-component Gaussian mixture of Cardoso et al.
(MCGdiff, ICLR 2024), against its exact posterior.

For each problem (``tests/posterior_utils.mixture_problem``: d = 8 with two observations, d = 80
with one) and each sample size N it prints, as Markdown:

* the exact-vs-exact floor: the mean sliced Wasserstein distance (100 directions) of 4 further
  sets of N exact posterior samples to a reference set of N exact samples -- what a perfect
  sampler scores at this N;
* ``smc`` (MCGdiff, ``pnpdiff.solvers.smc``) with N particles, N samples drawn from its final
  weights: the distance, its ratio to the floor, the largest error of the mixture weights it implies
  (each sample assigned to its most responsible exact-posterior component), the largest relative
  error of the per-coordinate posterior standard deviations, the wall time and the peak memory the
  run added (resident set, ``VmHWM`` after resetting it through ``/proc/self/clear_refs``);
* with ``--repeats R``: the median (and range) over R smc runs (generator seeds 0..R-1) -- one
  run's distance scatters by a factor of several at a fixed N (particle degeneracy), so a single
  run says little;
* every approximate method, N independent batched runs (``pnpdiff.sample_posterior``), at the
  largest N (and every N with ``--all``).

Sigmas: Karras 0.002..80, ``--steps`` steps (default 100) for smc and the approximate methods;
DAPS on 50 Karras levels 0.05..50 (its paper's annealing, halved), PnP-DM on 60 geometric
couplings 80..0.15 (the paper starts at 10 on [-1, 1] images; the mixture's modes are 16 apart, so
its chain must start at the scale of the data to move between them). Not a test; run by hand (minutes):

    python tests/benchmarks/posterior_table.py [--sizes 100 500 1000 2000 5000] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_calibration import _reset_peak, _status_kib  # noqa: E402
from posterior_utils import mixture_problem, sliced_wasserstein  # noqa: E402

import pnpdiff  # noqa: E402
from pnpdiff.schedules import geometric, karras  # noqa: E402
from pnpdiff.solvers import smc  # noqa: E402

APPROX = {
    "ddrm": {},
    "ddnm+": {},
    "diffpir": {"lam": 1.0, "zeta": 1.0},
    "pigdm": {},
    "dps": {"zeta": 0.1},
    "daps": {"schedule": karras(50, sigma_min=0.05, sigma_max=50.0)},
    # couplings from the scale of the data (modes 16 apart; the paper's rho_0 = 10 is for [-1, 1] images)
    "pnpdm": {"schedule": geometric(60, sigma_min=0.15, sigma_max=80.0)},
}


def _peak_run(fn):
    """``(result, seconds, bytes)``: wall time and the peak resident memory ``fn`` added."""
    ok = _reset_peak()
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = (_status_kib("VmHWM") - before) * 1024 if ok else float("nan")
    return out, dt, peak


def _cell(v: torch.Tensor, fmt: str) -> str:
    """One value, or the median and range of several."""
    if v.numel() == 1:
        return format(float(v[0]), fmt)
    return f"{format(float(v.median()), fmt)} ({format(float(v.min()), fmt)}-{format(float(v.max()), fmt)})"


def _stats(x: torch.Tensor, p, ref: torch.Tensor) -> tuple[float, float, float]:
    post = p.posterior
    sw = sliced_wasserstein(x, ref)
    w = torch.bincount(post.responsibilities(x, 1e-3).argmax(1), minlength=post.n_components).double() / x.shape[0]
    werr = float((w - post.weights).abs().max())
    sd = torch.diagonal(post.covariance()).sqrt()
    sderr = float(((x.reshape(x.shape[0], -1).std(0) - sd) / sd).abs().max())
    return sw, werr, sderr


def table(d: int, d_y: int, problem_seed: int, sizes: list[int], steps: int, all_sizes: bool,
          chunk: int, repeats: int = 1, smc_only: bool = False) -> None:
    p = mixture_problem(d, d_y, seed=problem_seed)
    sig = karras(steps, sigma_min=0.002, sigma_max=80.0)
    print(f"\n### d = {d}, {d_y} observation{'s' * (d_y > 1)}, problem seed {problem_seed} "
          f"(sigma_y = {p.sigma_y:.3g}; tau = sigma_y / s = "
          f"{', '.join(f'{v:.3g}' for v in (p.sigma_y / torch.linalg.svdvals(p.operator.matrix)).tolist())})\n")
    print("| method | N | SW | floor | SW / floor | max weight error | max sd error | time (s) | peak memory (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        ref = p.posterior.sample(n, generator=torch.Generator().manual_seed(1))
        floor = sum(sliced_wasserstein(p.posterior.sample(n, generator=torch.Generator().manual_seed(10 + k)), ref)
                    for k in range(4)) / 4
        prior_sw = sliced_wasserstein(p.prior.sample(n, generator=torch.Generator().manual_seed(2)), ref)
        runs = []
        for r in range(repeats):
            x, dt, mem = _peak_run(partial(smc, p.y, p.operator, p.prior, sig, p.sigma_y, particles=n, samples=n,
                                           chunk_size=chunk, generator=torch.Generator().manual_seed(r)))
            runs.append((*_stats(x, p, ref), dt, mem))
        t = torch.tensor(runs, dtype=torch.float64)
        t = torch.cat([t[:, :1] / floor, t], 1)  # columns: ratio, SW, weight error, sd error, time, memory
        c = [_cell(t[:, j], f) for j, f in enumerate((".2f", ".3f", ".3f", ".3f"))]
        med = t.median(0).values
        print(f"| smc | {n} | {c[1]} | {floor:.3f} | {c[0]} | {c[2]} | {c[3]} | {float(med[4]):.1f} | "
              f"{float(med[5]) / 2**20:.0f} |")
        if smc_only or not (all_sizes or n == sizes[-1]):
            continue
        print(f"| prior samples | {n} | {prior_sw:.3f} | {floor:.3f} | {prior_sw / floor:.2f} | | | | |")
        for name, kw in APPROX.items():
            opts = dict(kw)
            if "schedule" not in opts:
                opts["schedule"] = sig
            if name == "daps":  # the table's settings: the true likelihood, a constant Langevin step
                opts.update(beta_y=max(p.sigma_y, 1e-3), lr_min_ratio=1.0)
            x, dt, mem = _peak_run(partial(pnpdiff.sample_posterior, p.y, p.operator, p.prior, n=n, method=name,
                                           sigma_y=p.sigma_y, seed=0, progress=False, device="cpu", **opts))
            x = x[:, 0]
            sw, werr, sderr = _stats(x, p, ref)
            print(f"| {name} | {n} | {sw:.3f} | {floor:.3f} | {sw / floor:.2f} | {werr:.3f} | {sderr:.3f} | "
                  f"{dt:.1f} | {mem / 2**20:.0f} |")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1000, 2000, 5000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="problem seeds at d = 8")
    ap.add_argument("--seed80", type=int, default=3, help="problem seed at d = 80")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--chunk", type=int, default=1000, help="smc chunk_size (particles per denoiser call)")
    ap.add_argument("--all", action="store_true", help="the approximate methods at every N")
    ap.add_argument("--repeats", type=int, default=1, help="smc runs per N (generator seeds 0..R-1): median (range)")
    ap.add_argument("--smc-only", action="store_true", help="leave out the approximate methods")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for s in args.seeds:
        table(8, 2, s, args.sizes, args.steps, args.all, args.chunk, args.repeats, args.smc_only)
    table(80, 1, args.seed80, args.sizes, args.steps, args.all, args.chunk, args.repeats, args.smc_only)


if __name__ == "__main__":
    main()
