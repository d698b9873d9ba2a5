"""Issue 12's table: unconditional samplers on the 25-component Gaussian mixture (d = 8), started
at the old ``0.5 + sigma_T n`` and at the prior's own start ``N(m, S + sigma_T^2 I)``.

Sliced Wasserstein (100 directions) of N samples to N exact prior samples, as a multiple of the
floor (mean distance of 8 further exact sets of N to the same reference), Karras sigmas
0.002-80, 20 and 100 steps, a few seeds. Not a test; run by hand:

    python tests/benchmarks/sampler_start_table.py [N] [SEEDS]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from posterior_utils import sliced_wasserstein  # noqa: E402

from pnpdiff.priors.gaussian import mcgdiff_mixture  # noqa: E402
from pnpdiff.schedules import karras  # noqa: E402
from pnpdiff.solvers import ddim, ddpm, euler, heun  # noqa: E402


def main(n: int = 1000, seeds: int = 3) -> None:
    torch.set_num_threads(1)
    prior = mcgdiff_mixture(8, torch.Generator().manual_seed(0))
    samplers = {"ddpm": lambda s, x, g: ddpm(prior, s, x, generator=g),
                "ddim eta 0": lambda s, x, g: ddim(prior, s, x, generator=g),
                "ddim eta 0.5": lambda s, x, g: ddim(prior, s, x, eta=0.5, generator=g),
                "euler": lambda s, x, g: euler(prior, s, x, generator=g),
                "heun": lambda s, x, g: heun(prior, s, x, generator=g)}
    rows: dict[str, list[list[float]]] = {k: [] for k in samplers}
    floors = []
    for seed in range(seeds):
        ref = prior.sample(n, generator=torch.Generator().manual_seed(100 + seed))
        floor = sum(sliced_wasserstein(prior.sample(n, generator=torch.Generator().manual_seed(1000 * seed + k)), ref)
                    for k in range(8)) / 8
        floors.append(floor)
        for name, f in samplers.items():
            vals = []
            for steps in (20, 100):
                sig = karras(steps, sigma_min=0.002, sigma_max=80)
                g = torch.Generator().manual_seed(seed)
                old = f(sig, 0.5 + 80 * torch.randn(n, 8, generator=g), g)
                new = f(sig, (n, 8), torch.Generator().manual_seed(seed))
                vals += [sliced_wasserstein(old, ref) / floor, sliced_wasserstein(new, ref) / floor]
            rows[name].append(vals)
    print(f"N = {n}, {seeds} seeds; floor (absolute) {min(floors):.3f}-{max(floors):.3f}; entries: distance / floor, "
          "mean (max) over seeds")
    print("| sampler | 20 steps, 0.5 start | 20 steps, prior start | 100 steps, 0.5 start | 100 steps, prior start |")
    print("|---|---|---|---|---|")
    for name, vals in rows.items():
        t = torch.tensor(vals)
        cells = [f"{float(t[:, j].mean()):.2f} ({float(t[:, j].max()):.2f})" for j in range(4)]
        print(f"| `{name}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
