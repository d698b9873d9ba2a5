"""``pnpdiff.sample_posterior``: many draws from the posterior ``p(x | y)``, for uncertainty maps.

Two kinds of methods:

* ``method="smc"`` (:func:`pnpdiff.solvers.smc`, MCGdiff): one sequential Monte Carlo run per
  measurement with ``particles`` particles; the samples are drawn from its final weighted
  particles. Exact as the number of particles (and steps) grows, for linear operators with a
  spectral view and Gaussian noise. The default only for small problems
  (:data:`SMC_DEFAULT_MAX_VALUES`), where it is both affordable and better.
* every other method of :data:`pnpdiff.solvers.SOLVERS`: ``n`` independent runs, batched (the
  measurement is repeated ``n`` times along the batch, one seed per run), so each sample is what
  :func:`pnpdiff.solve` returns for that seed. These samplers are approximate: their spread is
  the method's, not necessarily the posterior's (``docs/posterior.md`` measures it).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from pnpdiff import costs, memory
from pnpdiff.api import (
    MAX_COUNT,
    MAX_SEED,
    MAX_STEPS,
    check_int,
    check_tensor,
    default_method,
    default_steps,
    resolve_device,
    resolve_operator,
    solve,
    task_of,
)
from pnpdiff.errors import PnPWarning, UnknownNameError, ValueRangeError
from pnpdiff.io import to_tensor
from pnpdiff.priors import load_prior
from pnpdiff.solvers import DESCRIPTORS, SOLVERS, descriptor
from pnpdiff.solvers.descriptor import DerivedSet

__all__ = ["sample_posterior", "run_seeds", "expected_calls", "POINT_ESTIMATES", "SMC_DEFAULT_MAX_VALUES",
           "LONG_RUN_PIXEL_CALLS"]

#: methods that return the same estimate whatever the seed (their "samples" have no spread): a view
#: of the descriptors' ``point_estimate``
POINT_ESTIMATES = DerivedSet(lambda: [name for name, info in DESCRIPTORS.items() if info.point_estimate])

#: ``smc`` is the default (for an operator with a spectral view) only up to this many values per
#: measurement: there it is affordable and measured closer to the exact posterior than every
#: approximate method (d = 8 and d = 80, ``docs/posterior.md``). On images its weights degenerate
#: (16x16 digits, 256 particles: the samples collapse onto a few ancestors) and it costs
#: ``particles x steps`` denoiser calls with their vector-Jacobian products: 64 particles on a
#: 128x128 photo took 492 s and 2.8 GB for a mean of 22.49 dB, where DiffPIR's 8 runs (160 calls)
#: took 5.5 s for 24.08 dB. Larger problems default to :func:`pnpdiff.solve`'s method.
SMC_DEFAULT_MAX_VALUES = 100

#: a run whose denoiser calls times pixels per call exceed this is announced before it starts (a
#: :class:`~pnpdiff.PnPWarning` with the number of calls and the memory estimate): about a minute
#: of FFDNet on a CPU (2 cores)
LONG_RUN_PIXEL_CALLS = 5e7

def expected_calls(method: str, n: int, steps: int, options: dict[str, Any] | None = None,
                   values: int | None = None) -> int:
    """Denoiser evaluations (per measurement) that :func:`sample_posterior` makes for ``n`` samples.

    ``smc``: per step, one call per particle -- with its vector-Jacobian product under the twisted
    proposal (the default), counted as 3 calls -- and one per probed particle (``probes``, default
    ``ceil(32768 / values)`` capped at ``particles``); the other methods: ``n`` runs of ``steps``
    calls (``daps``: ``ode_steps`` per step, ``pnpdm``: ``prior_steps``). Each method's descriptor
    says which (:attr:`~pnpdiff.solvers.SolverInfo.expected_calls`,
    :attr:`~pnpdiff.solvers.SolverInfo.inner_calls`).

    Parameters
    ----------
    method : str
        A key of :data:`pnpdiff.solvers.SOLVERS`.
    n : int
        Number of samples.
    steps : int
        Steps of the schedule.
    options : dict, optional
        The method's options as given to :func:`sample_posterior` (``particles``, ``probes``, ...).
    values : int, optional
        Values per measurement's image (``C * H * W``), for smc's default ``probes``.

    Returns
    -------
    int
    """
    opts = options or {}
    params = inspect.signature(SOLVERS[method]).parameters
    info = descriptor(method)
    if info is not None and info.expected_calls is not None:
        return int(info.expected_calls(n, steps, opts, values))
    inner = info.inner_calls if info is not None else None
    per_step = int(opts.get(inner, params[inner].default)) if inner else 1
    return n * steps * per_step


def _population(method: str) -> str | None:
    """The option holding the population of a method that draws every sample from one run (smc:
    ``particles``), ``None`` for the methods of independent runs."""
    info = descriptor(method)
    return info.population if info is not None else None


def _population_default(method: str) -> int:
    """The solver's default size of its population (smc: 64 particles)."""
    return int(inspect.signature(SOLVERS[method]).parameters[_population(method)].default)


def run_seeds(seed: int, n: int, b: int) -> list[list[int]]:
    """The ``n x b`` per-run seeds :func:`sample_posterior` derives from one ``seed``.

    Drawn from a generator seeded with ``seed``, row by row, so that the first ``k`` rows do not
    depend on ``n``: ``sample_posterior(..., n=8, seed=s)[:4]`` equals ``n=4`` with the same seed.
    """
    g = torch.Generator().manual_seed(int(seed))
    return [torch.randint(0, 2**62, (b,), generator=g).tolist() for _ in range(n)]


def _steps(options: dict[str, Any], prior: Any, op: Any, method: str) -> Any:
    """The schedule's length the runs will have (``steps``, the schedule's sigmas, or the default);
    what the caller gave when it is not an integer (solve refuses it)."""
    schedule, steps = options.get("schedule"), options.get("steps")
    if torch.is_tensor(schedule):
        return int(schedule.numel())
    if isinstance(schedule, (list, tuple)):
        return len(schedule)
    if steps is None:
        return default_steps(getattr(prior, "name", "custom"), task_of(op), method)
    return steps


def _x_shape(yt: Tensor, op: Any) -> tuple[int, ...] | None:
    """Shape of one measurement's image (``A^T y``), ``None`` where the operator does not tell it."""
    try:
        return tuple(op.adjoint(yt[:1]).shape) if hasattr(op, "adjoint") else tuple(yt[:1].shape)
    except Exception:  # noqa: BLE001 - solve reports a measurement that does not fit the operator
        return None


def _announce_cost(method: str, n: int, x_shape: tuple[int, ...] | None, yt: Tensor, op: Any, prior: Any,
                   options: dict[str, Any]) -> None:
    """Say the expected cost (denoiser calls, memory) before a long run starts (a PnPWarning)."""
    if x_shape is None:
        return
    steps = _steps(options, prior, op, method)
    try:
        if not 1 <= int(steps) <= MAX_STEPS:
            return  # solve refuses it, and its error comes alone
        calls = expected_calls(method, n, int(steps), options, math.prod(x_shape[1:])) * yt.shape[0]
    except (TypeError, ValueError, KeyError, OverflowError):  # an ill-typed option: solve refuses it, naming it
        return
    pixels = math.prod(x_shape[2:]) if len(x_shape) >= 3 else math.prod(x_shape[1:])
    if calls * pixels <= LONG_RUN_PIXEL_CALLS:
        return
    population = _population(method)
    k = max(n, _population_default(method)) if population else n
    need = costs.estimate_solve_bytes((k * x_shape[0], *x_shape[1:]), None, prior, method, yt.dtype)
    cheaper = ""
    if population:  # one run of many particles: say what the independent runs of the default method cost
        alt = default_method(task_of(op))
        alt_calls = expected_calls(alt, n, default_steps(getattr(prior, "name", "custom"), task_of(op), alt))
        cheaper = f"; method={alt!r} makes {alt_calls * yt.shape[0]:,} (docs/posterior.md compares them)"
    warnings.warn(f"sample_posterior with {method}: about {calls:,} denoiser calls on {memory.describe_shape(x_shape)}"
                  f", up to about {memory.format_bytes(need)} of memory (estimate; less when chunked to the memory "
                  f"budget){cheaper}", PnPWarning, stacklevel=3)


def _runs_per_call(yt: Tensor, op: Any, prior: Any, method: str, n: int, options: dict[str, Any]) -> int:
    """How many of the ``n`` independent runs one :func:`pnpdiff.solve` call takes: all of them when
    they fit the memory budget (``max_memory`` / ``PNPDIFF_MAX_MEMORY`` / what is available on the
    device), else as many as fit (the rest in further calls: the samples are the same, since each
    run has its own seed)."""
    dev = resolve_device(options.get("device"), yt)
    x_shape = _x_shape(yt, op)
    if x_shape is None:  # solve reports a measurement that does not fit the operator
        return n
    steps = _steps(options, prior, op, method)
    return costs.largest_fitting_batch((yt.shape[0], *x_shape[1:]), tuple(yt.shape), prior, method, n, dev,
                                        options.get("max_memory"), yt.dtype,
                                        steps=steps if isinstance(steps, int) and 0 < steps <= MAX_STEPS else 0)


def sample_posterior(
    y: Any,
    operator: Any,
    prior: Any = "natural",
    n: int = 8,
    method: str | None = None,
    sigma_y: float | None = None,
    seed: int | None = None,
    *,
    batch_size: int | None = None,
    **options: Any,
) -> Tensor:
    """Draw ``n`` samples from the posterior ``p(x | y)`` of ``y = A(x) + n``.

    Parameters
    ----------
    y, operator, prior, sigma_y
        As for :func:`pnpdiff.solve` (``sigma_y`` is estimated from ``y`` when not given).
    n : int
        Number of samples.
    method : str, optional
        ``"smc"``: MCGdiff's sequential Monte Carlo, whose samples converge to the posterior as its
        ``particles`` grow (default ``max(n, 64)`` particles; cost: ``particles`` denoiser calls
        and vector-Jacobian products per step, :func:`expected_calls`). It is the default for an
        operator with a spectral view (``Matrix``, ``Inpaint``, ``Colorize``, circular blurs,
        ``Downsample``) on a problem of at most :data:`SMC_DEFAULT_MAX_VALUES` values per
        measurement (vectors, tiny images), where it is affordable and better. Any other method
        of :data:`pnpdiff.solvers.SOLVERS` (default otherwise, images included:
        :func:`pnpdiff.solve`'s, DiffPIR for a linear operator): ``n`` independent, batched runs.
        ``"mmse"`` and ``"dpir"`` are point estimates: their ``n``
        samples are identical (a :class:`~pnpdiff.PnPWarning` says so).
    seed : int, optional
        Seed of every random draw: run ``k`` of the independent methods gets its own seed
        (:func:`run_seeds`), and so does each measurement's SMC run. The same seed gives the same
        samples; for the independent methods the first ``k`` samples do not depend on ``n`` or on
        ``batch_size``. ``None``: torch's global generator.
    batch_size : int, optional
        Independent runs per :func:`pnpdiff.solve` call. Default: all ``n`` at once when they fit
        the memory budget (``max_memory``, ``PNPDIFF_MAX_MEMORY`` or what the device has free), else
        as many per call as fit. The samples do not depend on it (each run has its own seed), up to
        the float rounding of batched convolutions. Ignored by ``"smc"`` (whose ``chunk_size``
        particles per denoiser call are chosen the same way).
    **options
        Passed to :func:`pnpdiff.solve` (``steps``, ``device``, ``progress``, ``max_memory``,
        ``precision``, ``compile``, schedule options and the method's hyper-parameters, e.g.
        ``particles`` for ``"smc"``).

    Returns
    -------
    Tensor
        ``(n, *x.shape)``: ``x.shape`` is the shape of the tensor :func:`pnpdiff.solve` returns
        for a tensor ``y`` (``(C, H, W)`` for a ``(C, H, W)`` image, ``(B, C, H, W)`` for a batch,
        ``(B, d)`` for vectors under a non-image prior); ``(C, H, W)`` for an array, a PIL image
        or a path. ``samples.mean(0)`` is the posterior-mean estimate and ``samples.std(0)`` the
        per-pixel posterior standard deviation.

    Raises
    ------
    PnPError
        As :func:`pnpdiff.solve`; an ``n`` or ``batch_size`` outside 1 to
        :data:`pnpdiff.api.MAX_COUNT` is a :class:`~pnpdiff.ValueRangeError`.

    Warns
    -----
    PnPWarning
        Before a long run (more than :data:`LONG_RUN_PIXEL_CALLS` denoiser calls times pixels):
        the number of denoiser calls and the memory estimate, and a cheaper method for smc.

    References
    ----------
    G. Cardoso, Y. Janati El Idrissi, S. Le Corff and E. Moulines, "Monte Carlo guided
    Diffusion for Bayesian linear inverse problems", ICLR 2024. https://arxiv.org/abs/2308.07983 (``method="smc"``).

    Examples
    --------
    >>> samples = pnpdiff.sample_posterior(y, Downsample(4), n=16, seed=0)  # doctest: +SKIP
    >>> mean, std = samples.mean(0), samples.std(0)  # doctest: +SKIP
    """
    n = check_int("n", n, minimum=1, maximum=MAX_COUNT)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1, maximum=MAX_COUNT)
    if seed is not None:
        seed = check_int("seed", seed, minimum=0, maximum=MAX_SEED)
    check_tensor("y", y)
    if method is not None and (not isinstance(method, str) or method not in SOLVERS):
        raise UnknownNameError(f"unknown method {method!r}; known: {', '.join(sorted(SOLVERS))}")
    if "seed" in options or "samples" in options:
        raise ValueRangeError("sample_posterior takes one seed and draws n samples itself; "
                              "pass seed= and n= (not per-run seeds or 'samples')")
    prior_obj = load_prior(prior)
    op = resolve_operator(operator)

    if getattr(prior_obj, "data_range", (0.0, 1.0)) is None and torch.is_tensor(y) and y.is_floating_point():
        yt, rank = y, None  # vectors of a non-image prior keep their layout
    else:
        yt, _ = to_tensor(y)
        rank = y.ndim if torch.is_tensor(y) else 3
    b = yt.shape[0]
    x_shape = _x_shape(yt, op)
    if method is None:
        small = x_shape is not None and math.prod(x_shape[1:]) <= SMC_DEFAULT_MAX_VALUES
        method = "smc" if getattr(op, "has_svd", False) and small else default_method(task_of(op))
    _announce_cost(method, n, x_shape, yt, op, prior_obj, options)

    population = _population(method)
    if population:  # one run draws all n samples from its population (smc's particles)
        if population not in options:
            options[population] = max(n, _population_default(method))
        elif isinstance(options[population], int) and 0 < options[population] < n:
            warnings.warn(f"{n} samples from {options[population]} {population}: the samples repeat {population} "
                          f"(at most {options[population]} distinct); give {population} well above n", PnPWarning,
                          stacklevel=2)
        seeds = None if seed is None else [s[0] for s in run_seeds(seed, b, 1)]
        out = solve(yt, op, prior_obj, method=method, sigma_y=sigma_y, seed=seeds, samples=n, **options)
    else:
        per_run = None if seed is None else run_seeds(seed, n, b)
        step = batch_size if batch_size is not None else _runs_per_call(yt, op, prior_obj, method, n, options)
        parts = []
        for k0 in range(0, n, step):
            k1 = min(n, k0 + step)
            rep = yt.repeat(k1 - k0, *([1] * (yt.ndim - 1)))
            seeds_k: Sequence[int] | None = None
            if per_run is not None:
                seeds_k = [s for row in per_run[k0:k1] for s in row]
            parts.append(solve(rep, op, prior_obj, method=method, sigma_y=sigma_y, seed=seeds_k, **options))
        out = torch.cat(parts)
    if method in POINT_ESTIMATES and n > 1:  # after the solve: a mistake it raises comes alone
        warnings.warn(f"method {method!r} is a point estimate: its {n} samples are identical (zero spread); "
                      "use method='smc' or a stochastic solver for uncertainty", PnPWarning, stacklevel=2)
    out = out.reshape(n, b, *out.shape[1:])
    if rank is None or rank == 4:
        return out
    return out[:, 0] if rank == 3 else out[:, 0, 0]
