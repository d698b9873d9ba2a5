"""One descriptor per solver (issue 26, item 2): the tables are built from the descriptors.

The expectations below are the tables as they were written by hand before the descriptors (git
1ca337c: ``api.DEFAULTS``, ``api.OPTION_RANGES``, ``memory.METHOD_COSTS``,
``memory.BACKPROP_METHODS``, ``posterior.POINT_ESTIMATES``, ``posterior._INNER_CALLS``), copied
here as the independent reference: a descriptor that drifts from them changes what ``solve`` runs.
"""

from __future__ import annotations

import functools
import inspect

import pytest
import torch

import pnpdiff
from pnpdiff import api, costs, posterior
from pnpdiff.errors import MemoryLimitError
from pnpdiff.operators import GaussianBlur, LinearOperator
from pnpdiff.solvers import DESCRIPTORS, SAMPLER_DESCRIPTORS, SOLVERS, SolverInfo, descriptor, register, unregister

MAX_STEPS, MAX_COUNT, MAX_SIGMA_Y, MAX_PARTICLES = 100_000, 65_536, 1e3, 2**20

OLD_DEFAULTS = {
    ("*", "*", "diffpir"): {"steps": 50, "schedule": "ddpm", "lam": 1.75, "zeta": 0.3},
    ("natural", "*", "diffpir"): {"steps": 20, "lam": 0.5, "zeta": 1.0},
    ("natural", "inpaint", "diffpir"): {"steps": 50},
    ("*", "*", "dpir"): {"steps": 8, "schedule": "geometric", "schedule_max": 49 / 255, "schedule_min": "sigma_y"},
    ("*", "sr", "dpir"): {"steps": 24},
    ("natural", "*", "dps"): {"zeta": 5.0},
    ("natural", "deblur", "dps"): {"zeta": 10.0},
    ("natural", "sr", "dps"): {"zeta": 4.0},
    ("natural", "*", "reddiff"): {"lam": 0.1},
    ("*", "*", "mmse"): {"steps": 1},
    ("*", "*", "smc"): {"steps": 50},
    ("*", "*", "daps"): {"steps": 50, "schedule": "karras", "schedule_max": 50.0, "schedule_min": 0.05},
    ("*", "*", "pnpdm"): {"steps": 40, "schedule": "geometric", "schedule_max": 5.0, "schedule_min": 0.15},
}

OLD_OPTION_RANGES = {
    ("diffpir", "lam"): (0.0, 1e6, True),
    ("diffpir", "zeta"): (0.0, 1.0, False),
    ("dpir", "lam"): (0.0, 1e6, True),
    ("dps", "zeta"): (0.0, 1e3, False),
    ("reddiff", "lam"): (0.0, 1e6, False),
    ("reddiff", "lr"): (0.0, 1.0, True),
    ("ddrm", "eta"): (0.0, 1.0, False),
    ("ddrm", "eta_b"): (0.0, 1.0, False),
    ("ddrm", "svd_threshold"): (0.0, 1.0, False),
    ("ddnm", "eta"): (0.0, 1.0, False),
    ("ddnm+", "eta"): (0.0, 1.0, False),
    ("ddnm+", "svd_threshold"): (0.0, 1.0, False),
    ("ddnm", "travel_length"): (0, MAX_STEPS, False),
    ("ddnm+", "travel_length"): (0, MAX_STEPS, False),
    ("ddnm", "travel_repeat"): (1, 1000, False),
    ("ddnm+", "travel_repeat"): (1, 1000, False),
    ("pigdm", "eta"): (0.0, 1.0, False),
    ("pigdm", "guidance"): (0.0, 1e3, False),
    ("pigdm", "cg_iter"): (1, MAX_STEPS, False),
    ("pigdm", "data_std"): (0.0, 1e3, True),
    ("smc", "particles"): (1, MAX_PARTICLES, False),
    ("smc", "chunk_size"): (1, MAX_PARTICLES, False),
    ("smc", "probes"): (1, MAX_PARTICLES, False),
    ("smc", "samples"): (0, MAX_COUNT, False),
    ("smc", "svd_threshold"): (0.0, 1.0, False),
    ("daps", "ode_steps"): (1, MAX_STEPS, False),
    ("daps", "langevin_steps"): (0, MAX_STEPS, False),
    ("daps", "ode_sigma_min"): (0.0, None, False),
    ("daps", "beta_y"): (0.0, MAX_SIGMA_Y, True),
    ("pnpdm", "prior_steps"): (1, MAX_STEPS, False),
    ("pnpdm", "langevin_steps"): (1, MAX_STEPS, False),
    ("pnpdm", "prior_sigma_min"): (0.0, None, False),
}

OLD_METHOD_COSTS = {
    "diffpir": (4, 6), "dpir": (7, 6), "ddnm": (7, 6), "ddnm+": (21, 6), "ddrm": (24, 6), "reddiff": (18, 6),
    "mmse": (2, 4), "dps": (14, 14), "pigdm": (11, 8),
    "ddpm": (4, 6), "ddim": (4, 6), "euler": (4, 6), "heun": (6, 6),
}
OLD_DEFAULT_METHOD_COST = (32.0, 16.0)
OLD_BACKPROP = {"dps", "pigdm", "smc"}
OLD_POINT_ESTIMATES = {"mmse", "dpir"}
OLD_INNER_CALLS = {"daps": "ode_steps", "pnpdm": "prior_steps"}
OLD_SOLVERS = ["diffpir", "ddrm", "ddnm", "ddnm+", "dpir", "mmse", "dps", "pigdm", "reddiff", "smc", "daps", "pnpdm"]


def test_every_solver_has_its_descriptor() -> None:
    assert list(SOLVERS) == OLD_SOLVERS  # the names, in their order
    assert list(DESCRIPTORS) == list(SOLVERS)
    for name, fn in SOLVERS.items():
        info = DESCRIPTORS[name]
        assert isinstance(info, SolverInfo) and info.name == name and info.function is fn
        module = inspect.getmodule(fn)  # the descriptor is defined in the solver's own file
        assert info in (getattr(module, "INFO", None), getattr(module, "INFO_PLUS", None)), name
    assert list(SAMPLER_DESCRIPTORS) == ["ddpm", "ddim", "euler", "heun"]
    assert not set(SAMPLER_DESCRIPTORS) & set(SOLVERS)  # samplers are not methods of solve


def test_the_derived_tables_are_the_old_tables() -> None:
    assert dict(api.DEFAULTS) == OLD_DEFAULTS
    assert dict(api.OPTION_RANGES) == OLD_OPTION_RANGES
    assert dict(costs.METHOD_COSTS) == OLD_METHOD_COSTS
    assert dict(costs.METHOD_BUFFERS) == {k: v[0] for k, v in OLD_METHOD_COSTS.items()}
    assert costs.DEFAULT_METHOD_COST == OLD_DEFAULT_METHOD_COST
    assert set(costs.BACKPROP_METHODS) == OLD_BACKPROP and costs.BACKPROP_METHODS == frozenset(OLD_BACKPROP)
    assert set(posterior.POINT_ESTIMATES) == OLD_POINT_ESTIMATES and "mmse" in posterior.POINT_ESTIMATES
    assert {n: i.inner_calls for n, i in DESCRIPTORS.items() if i.inner_calls} == OLD_INNER_CALLS
    # what the tables feed: every method's defaults per (prior, task), as the old lookup gave them
    for prior in ("natural", "ffhq", "custom"):
        for task in ("deblur", "sr", "inpaint", "denoise", "colorize", "nonlinear", "generic"):
            for method in OLD_SOLVERS:
                want: dict = {}
                for key in [("*", "*", method), (prior, "*", method), ("*", task, method), (prior, task, method)]:
                    want.update(OLD_DEFAULTS.get(key, {}))
                assert api.default_options(prior, task, method) == want, (prior, task, method)


def test_the_memory_estimate_reads_the_descriptor() -> None:
    x = (1, 3, 64, 64)
    # unknown methods and the methods without a stated cost share the conservative default
    assert costs.estimate_solve_bytes(x, x, "natural", "daps") == costs.estimate_solve_bytes(x, x, "natural",
                                                                                             "no-such-method")
    # a backprop method keeps the denoiser's graph: smc costs more than the same default cost without it
    assert costs.estimate_solve_bytes(x, x, "natural", "smc") > costs.estimate_solve_bytes(x, x, "natural", "pnpdm")


def _fake_solver(y, operator, prior, sigmas, sigma_y, strength: float = 1.0, generator=None, callback=None,
                 progress=False):
    """A planted solver: ``strength * A^T y`` (no denoiser call)."""
    _fake_solver.seen = {"strength": strength, "steps": len(sigmas)}  # type: ignore[attr-defined]
    return (strength * operator.adjoint(y)).clamp(0, 1)


@pytest.fixture
def planted():
    info = register(SolverInfo(
        "planted", _fake_solver,
        defaults={("*", "*"): {"steps": 7, "strength": 0.5}, ("natural", "deblur"): {"strength": 0.25}},
        memory_cost=(123.0, 45.0), backprop=True, point_estimate=True,
        option_ranges={"strength": (0.0, 2.0, True)},
    ))
    yield info
    unregister("planted")


def test_a_planted_solver_is_registered_through_its_descriptor_alone(planted) -> None:
    assert SOLVERS["planted"] is _fake_solver and descriptor("planted") is planted
    assert api.DEFAULTS[("*", "*", "planted")] == {"steps": 7, "strength": 0.5}
    assert api.DEFAULTS[("natural", "deblur", "planted")] == {"strength": 0.25}
    assert api.OPTION_RANGES[("planted", "strength")] == (0.0, 2.0, True)
    assert costs.METHOD_COSTS["planted"] == (123.0, 45.0) and costs.METHOD_BUFFERS["planted"] == 123.0
    assert "planted" in costs.BACKPROP_METHODS and "planted" in posterior.POINT_ESTIMATES
    assert api.default_steps("natural", "deblur", "planted") == 7
    # solve runs it with its defaults and checks its option ranges
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    op = GaussianBlur(1.0)
    pnpdiff.solve(op(x), op, method="planted", sigma_y=0.01, progress=False)
    assert _fake_solver.seen == {"strength": 0.25, "steps": 7 + 1}  # type: ignore[attr-defined]
    with pytest.raises(pnpdiff.ValueRangeError, match=r"option 'strength' of method 'planted' must be > 0"):
        pnpdiff.solve(op(x), op, method="planted", sigma_y=0.01, progress=False, strength=0.0)
    # its memory model: the stated buffers, the graph of a backprop method, the advice
    shape = (1, 3, 256, 256)
    assert costs.estimate_solve_bytes(shape, shape, "natural", "planted") > costs.estimate_solve_bytes(
        shape, shape, "natural", "dps")
    with pytest.raises(MemoryLimitError, match=r"diffpir, dpir, ddnm instead of planted"):
        pnpdiff.solve(op(x), op, method="planted", sigma_y=0.01, progress=False, max_memory="1M")
    # the sample_posterior warning of a point estimate
    with pytest.warns(pnpdiff.PnPWarning, match=r"method 'planted' is a point estimate"):
        pnpdiff.sample_posterior(op(x), op, n=2, method="planted", sigma_y=0.01, progress=False)


def test_unregister_removes_it_everywhere(planted) -> None:
    unregister("planted")
    assert "planted" not in SOLVERS and ("*", "*", "planted") not in api.DEFAULTS
    assert "planted" not in costs.METHOD_COSTS and "planted" not in costs.BACKPROP_METHODS
    assert "planted" not in posterior.POINT_ESTIMATES and descriptor("planted") is None
    with pytest.raises(pnpdiff.UnknownNameError, match="unknown method 'planted'"):
        pnpdiff.solve(torch.rand(1, 3, 8, 8), GaussianBlur(1.0), method="planted")


def test_a_function_put_into_solvers_by_hand_keeps_the_registered_facts(monkeypatch) -> None:
    seen = {}

    @functools.wraps(SOLVERS["diffpir"])  # (its signature: solve passes the options it declares)
    def spy(y, operator, prior, sigmas, sigma_y, **kw):
        seen.update(kw, steps=len(sigmas))
        return y.clone()

    monkeypatch.setitem(SOLVERS, "diffpir", spy)  # a wrapper around a registered method
    assert descriptor("diffpir") is DESCRIPTORS["diffpir"]
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    pnpdiff.solve(x, GaussianBlur(1.0), method="diffpir", sigma_y=0.01, progress=False)
    assert seen["lam"] == 0.5 and seen["zeta"] == 1.0 and seen["steps"] == 21  # the natural prior's defaults
    monkeypatch.setitem(SOLVERS, "by-hand", spy)  # a method without a descriptor: a bare one
    bare = descriptor("by-hand")
    assert bare is not None and bare.defaults == {} and not bare.backprop and bare.memory_cost is None


def test_a_descriptor_is_frozen_and_checked() -> None:
    info = DESCRIPTORS["dps"]
    with pytest.raises(AttributeError):
        info.backprop = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        info.defaults[("*", "*")] = {}  # type: ignore[index]
    with pytest.raises(pnpdiff.ValueRangeError):
        SolverInfo("", _fake_solver)
    with pytest.raises(pnpdiff.ValueRangeError):
        SolverInfo("x", "not a function")  # type: ignore[arg-type]
    with pytest.raises(pnpdiff.ValueRangeError):
        register("dps")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ operators state their task
class _Squash(LinearOperator):
    """A planted operator class that declares its task (a name not in any table)."""

    task = "sr"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y


def test_task_of_reads_the_operators_class_attribute() -> None:
    assert api.task_of(_Squash()) == "sr" and api.task_of(_Squash) == "sr"
    assert api.default_steps("natural", api.task_of(_Squash()), "dpir") == 24  # the sr row of dpir
    assert api.task_of(GaussianBlur(1.0)) == "deblur" and api.task_of("GaussianBlur") == "deblur"
    assert api.task_of("Downsample") == "sr" and api.task_of("PhaseRetrieval") == "nonlinear"
    assert api.task_of("NoSuchOperator") == "generic"
    assert api.task_of(lambda v: v**2) == "nonlinear"  # a forward model without an adjoint
    assert api.task_of(object()) == "generic"


def test_the_measurement_range_is_the_operators() -> None:
    from pnpdiff.operators import Inpaint, PhaseRetrieval

    assert api.measurement_range(PhaseRetrieval(2.0), (0.0, 1.0)) is None  # a Fourier magnitude
    assert api.measurement_range(GaussianBlur(1.0), (0.0, 1.0)) == (0.0, 1.0)
    assert api.measurement_range(GaussianBlur(1.0), (0.0, 255.0)) == (0.0, 255.0)  # the prior's units
    assert api.measurement_range(Inpaint(torch.ones(1, 1, 4, 4)), None) is None  # data that are not images
    assert api.measurement_range(lambda v: v, (0.0, 1.0)) == (0.0, 1.0)  # a callable says nothing: an image
