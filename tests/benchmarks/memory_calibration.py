"""Measure the peak memory of FFDNet denoising and of ``pnpdiff.solve`` on the CPU, against
:func:`pnpdiff.costs.estimate_solve_bytes`.

Each case runs in a fresh Python process that imports pnpdiff, loads the ``natural`` prior and
builds the operator and the measurement (and imports what torch imports lazily on first use:
``torch.broadcast_shapes`` pulls in sympy, 30 MiB), then (the baseline) collects garbage, trims the C heap,
resets the kernel's peak-RSS counter (``/proc/self/clear_refs``, value 5) and reads ``VmRSS``;
after the work it reads ``VmHWM``. The difference is the peak resident memory the work added on
top of everything that was already there: the quantity :func:`pnpdiff.memory.check_memory`
compares with the memory left. Where ``clear_refs`` cannot be written, the child reports
``ru_maxrss`` and a second child that stops before the work gives the baseline.

Usage (from the repository root; about a minute for the default table on two CPU cores)::

    python tests/benchmarks/memory_calibration.py
    python tests/benchmarks/memory_calibration.py --sizes 256 --cases diffpir dps --op sr

The table it printed is in the docstring of :mod:`pnpdiff.memory`.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

#: the cases: FFDNet alone (``denoise``, ``denoise_grad`` = forward with a graph and the
#: vector-Jacobian product), or ``solve`` with one method
CASES = ("denoise", "denoise_grad", "diffpir", "dpir", "dps", "pigdm", "ddrm", "ddnm", "ddnm+", "reddiff", "mmse")
#: degradations: Gaussian blur (circular, std 2 px), 4x super-resolution, 50 % random inpainting,
#: denoising (the only one ``mmse`` takes)
OPS = ("blur", "sr", "inpaint", "identity")
#: priors: the FFDNet ``natural`` prior; a randomly initialised ADM UNet of :data:`SMALL_ADM`'s
#: architecture (no checkpoint is available offline; the cost per pixel of the published ones is
#: computed from their architecture by :func:`pnpdiff.costs.adm_activation_units`); deepinv's
#: DRUNet with random weights (the model behind a typical :class:`~pnpdiff.priors.DeepinvPrior`)
PRIORS = ("natural", "adm", "adm-b", "drunet")
#: the ADM architecture measured (ffhq's layout, narrower and shallower, at the measured size)
SMALL_ADM = {"model_channels": 32, "num_res_blocks": 1, "channel_mult": (1, 2, 2, 4), "attention_resolutions": (8,),
             "num_head_channels": 32}
#: a second layout (imagenet's: two residual blocks per level, attention at two levels), to check
#: that the architecture walk of :func:`pnpdiff.costs.adm_activation_units` carries over
SMALL_ADM_B = {"model_channels": 32, "num_res_blocks": 2, "channel_mult": (1, 1, 2, 2, 4),
               "num_head_channels": 32}


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> bool:
    """Trim the C heap and reset ``VmHWM`` to the current RSS; ``False`` where not allowed."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _prior(name: str, size: int) -> Any:
    import torch

    from pnpdiff.priors import load_prior

    torch.manual_seed(0)
    if name == "natural":
        return load_prior("natural")
    if name in ("adm", "adm-b"):
        from pnpdiff.priors import ADMConfig, ADMPrior, ADMUNet

        if name == "adm":
            cfg = ADMConfig(image_size=size, **{**SMALL_ADM, "attention_resolutions": (size // 8,)})
        else:
            cfg = ADMConfig(image_size=size, **{**SMALL_ADM_B, "attention_resolutions": (size // 8, size // 4)})
        return ADMPrior(ADMUNet(cfg).eval().requires_grad_(False), name="adm-small")
    if name == "drunet":
        from deepinv.models import DRUNet

        from pnpdiff.priors import DeepinvPrior

        return DeepinvPrior(DRUNet(pretrained=None).eval().requires_grad_(False))
    raise ValueError(f"unknown prior {name!r}; known: {', '.join(PRIORS)}")


def _build(size: int, op_name: str, prior_name: str = "natural") -> tuple[Any, Any, Any]:
    """The operator, the measurement ``y`` and the prior (part of the baseline)."""
    import torch

    from pnpdiff.operators import Downsample, GaussianBlur, Identity, Inpaint

    g = torch.Generator().manual_seed(0)
    # a smooth colour image (not grey: solve would restore a grey one as one channel)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, size // 8, size // 8, generator=g), size=(size, size),
                                        mode="bilinear", align_corners=False)
    if op_name == "blur":
        op = GaussianBlur(2.0)
    elif op_name == "sr":
        op = Downsample(4)
    elif op_name == "identity":
        op = Identity()
    elif op_name == "inpaint":
        op = Inpaint((torch.rand(1, 1, size, size, generator=g) > 0.5).float())
    else:
        raise ValueError(f"unknown operator {op_name!r}; known: {', '.join(OPS)}")
    with torch.no_grad():
        y = (op(x) + 0.025 * torch.randn(op(x).shape, generator=g)).clamp(0, 1)
    return op, y, _prior(prior_name, size)


def _work(case: str, op: Any, y: Any, prior: Any, steps: int) -> None:
    import torch

    import pnpdiff

    if case == "denoise":
        with torch.no_grad():
            prior.denoise(op.adjoint(y), 0.1)
    elif case == "denoise_grad":
        with torch.enable_grad():
            xt = op.adjoint(y).detach().requires_grad_(True)
            torch.autograd.grad(prior.denoise(xt, 0.1).square().sum(), xt)
    else:
        pnpdiff.solve(y, op, prior=prior, method=case, steps=steps, seed=0, progress=False, device="cpu")


def estimate(case: str, x_shape: tuple[int, ...], y_shape: tuple[int, ...], prior: Any) -> int:
    """The estimate of :mod:`pnpdiff.memory` for a case: the prior alone for the denoiser cases."""
    from pnpdiff import costs as memory

    if case in ("denoise", "denoise_grad"):
        return memory.estimate_denoise_bytes(x_shape, prior, grad=case == "denoise_grad")
    return memory.estimate_solve_bytes(x_shape, y_shape, prior, case)


def child(case: str, size: int, op_name: str, steps: int, baseline_only: bool,
          prior_name: str = "natural") -> dict[str, Any]:
    """Run one case in this process and return its memory figures (bytes)."""
    import torch

    op, y, prior = _build(size, op_name, prior_name)
    x_shape = tuple(op.adjoint(y).shape)
    # an import, not the work: torch imports sympy (~30 MiB) on the first torch.broadcast_shapes
    import torch.fx.experimental.symbolic_shapes  # noqa: F401

    reset = _reset_peak()
    base = _status_kib("VmRSS") * 1024
    if not baseline_only:
        _work(case, op, y, prior, steps)
    out: dict[str, Any] = {"x_shape": x_shape, "y_shape": tuple(y.shape), "reset": reset,
                           "threads": torch.get_num_threads()}
    if reset:
        out["delta"] = _status_kib("VmHWM") * 1024 - base
    out["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["estimate"] = estimate(case, x_shape, tuple(y.shape), prior)
    return out


def _run_child(case: str, size: int, op_name: str, steps: int, baseline_only: bool = False,
               prior_name: str = "natural") -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, str(size), op_name, str(steps),
           prior_name]
    if baseline_only:
        cmd.append("--baseline-only")
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"child {case} {size} {op_name} {prior_name} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure(case: str, size: int, op_name: str = "blur", steps: int = 2, prior_name: str = "natural") -> dict[str, Any]:
    """Peak memory (bytes) ``case`` adds on a ``size`` x ``size`` RGB image, and the estimate.

    Parameters
    ----------
    case : str
        One of :data:`CASES`.
    size : int
        Side of the (square, RGB) image ``x``.
    op_name : str
        One of :data:`OPS`.
    steps : int
        ``steps`` passed to ``solve``.
    prior_name : str
        One of :data:`PRIORS`.

    Returns
    -------
    dict
        ``measured`` (peak RSS above the baseline), ``estimate`` (of
        :func:`pnpdiff.costs.estimate_solve_bytes`; for the denoiser-only cases the prior's
        part), ``x_shape``, ``y_shape``, ``how`` (``"clear_refs"`` or ``"baseline process"``).
    """
    out = _run_child(case, size, op_name, steps, prior_name=prior_name)
    if out["reset"]:
        measured, how = out["delta"], "clear_refs"
    else:
        base = _run_child(case, size, op_name, steps, baseline_only=True, prior_name=prior_name)
        measured, how = out["maxrss"] - base["maxrss"], "baseline process"
    return {"measured": measured, "estimate": out["estimate"], "x_shape": out["x_shape"],
            "y_shape": out["y_shape"], "how": how, "threads": out["threads"]}


def table(path: Path, sizes: list[int] | None = None) -> None:
    """Print the rows ``--json`` runs saved, one table per operator, the estimates recomputed with
    the current :mod:`pnpdiff.memory`."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    priors: dict[tuple[str, int], Any] = {}
    runs: dict[tuple[str, str], dict[tuple[str, int], tuple[list[float], float]]] = {}
    rows = [r for r in rows if sizes is None or r["size"] in sizes]
    sizes = sorted({r["size"] for r in rows})
    for r in rows:
        key = (r["prior"], r["size"] if r["prior"].startswith("adm") else 0)
        if key not in priors:
            priors[key] = _prior(r["prior"], r["size"])
        e = estimate(r["case"], tuple(r["x_shape"]), tuple(r["y_shape"]), priors[key])
        cell = runs.setdefault((r["prior"], r["case"]), {}).setdefault((r["op"], r["size"]), ([], e))
        cell[0].append(r["measured"])
    out: dict[tuple[str, str], dict[tuple[str, int], str]] = {}
    spread = []
    for key, cells in runs.items():
        for where, (ms, e) in cells.items():  # repeated runs: the largest measurement
            out.setdefault(key, {})[where] = f"{max(ms) / 2**20:.0f}/{e / 2**20:.0f} {e / max(ms):.2f}"
            if len(ms) > 1:
                spread.append((e / min(ms), max(ms) / min(ms), key, where))
    ops = [o for o in OPS if any(r["op"] == o for r in rows)]
    for op in ops:
        print(f"{op}: measured / estimate (MiB), estimate / measured")
        print(f"    {'prior':7} {'case':12}" + "".join(f" {s:>14}" for s in sizes))
        for (prior, case), cells in out.items():
            if any(k[0] == op for k in cells):
                print(f"    {prior:7} {case:12}" + "".join(f" {cells.get((op, s), '-'):>14}" for s in sizes))
    if spread:
        worst = max(spread)
        print(f"repeated runs (the largest is shown): {len(spread)} cells, up to {max(x[1] for x in spread):.2f}x "
              f"apart;\nagainst the smallest run the ratio reaches {worst[0]:.2f} ({worst[2][1]}, {worst[3][0]} "
              f"{worst[3][1]}^2)")


def main(argv: list[str] | None = None) -> None:
    """Print the calibration table: measured peak, estimate, their ratio and bytes per pixel."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--op", default="blur", choices=OPS)
    parser.add_argument("--prior", default="natural", choices=PRIORS)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also append each row to this JSON-lines file")
    parser.add_argument("--table", type=Path, default=None, help="only print the table of a --json file")
    args = parser.parse_args(argv)
    if args.table is not None:
        table(args.table, args.sizes if "--sizes" in (argv if argv is not None else sys.argv) else None)
        return
    print(f"prior {args.prior}, operator {args.op}, {args.steps} steps; peak RSS above the baseline (MiB), "
          "bytes per pixel of x, estimate, estimate / measured")
    print(f"{'case':>13} {'size':>5} {'measured':>9} {'B/px':>7} {'estimate':>9} {'B/px':>7} {'ratio':>6}")
    for case in args.cases:
        if (case == "mmse") != (args.op == "identity") and case not in ("denoise", "denoise_grad"):
            continue  # mmse is the denoising method; the others restore, identity is for mmse only
        for size in args.sizes:
            r = measure(case, size, args.op, args.steps, args.prior)
            px = size * size
            m, e = r["measured"], r["estimate"]
            print(f"{case:>13} {size:>5} {m / 2**20:9.1f} {m / px:7.0f} {e / 2**20:9.1f} {e / px:7.0f} "
                  f"{e / max(m, 1):6.2f}", flush=True)
            if args.json is not None:
                with args.json.open("a") as f:
                    f.write(json.dumps({"case": case, "size": size, "op": args.op, "prior": args.prior, **r}) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, c, s, o, n, p, *rest = sys.argv
        print(json.dumps(child(c, int(s), o, int(n), baseline_only="--baseline-only" in rest, prior_name=p)))
    else:
        main()
