"""What pnpdiff knows about one solver, in one place: its descriptor (:class:`SolverInfo`).

Each solver's file defines its function and, next to it, one :class:`SolverInfo` (``INFO``):
the defaults per prior family and task, the memory cost model, whether it differentiates the
denoiser, whether it is a point estimate, the documented ranges of its options and the few
special cases a method has (SMC's particles). :mod:`pnpdiff.solvers` registers them
(:func:`register`); everything else -- ``solve``'s defaults (:data:`pnpdiff.api.DEFAULTS`), the
memory estimates (:mod:`pnpdiff.costs`), :data:`pnpdiff.posterior.POINT_ESTIMATES` -- is a view
computed from the registry (:class:`DerivedTable`, :class:`DerivedSet`), never a copy, so that
adding a solver touches its own file and the registry's import only.

This module imports only :mod:`pnpdiff.errors` (it sits below every reader of the registry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from pnpdiff.errors import ValueRangeError

__all__ = ["SolverInfo", "MemoryPlan", "DerivedTable", "DerivedSet", "register", "unregister", "descriptor",
           "DESCRIPTORS", "SAMPLER_DESCRIPTORS", "SOLVERS"]

#: ``(low, high, low excluded)`` of an option (``None``: no bound)
OptionRange = tuple[Any, Any, bool]


class MemoryPlan(NamedTuple):
    """What a solver's :attr:`SolverInfo.plan_memory` hook says about one solve's memory.

    Parameters
    ----------
    x_shape : tuple of int
        The shape the memory estimate is made for (SMC: the particles one denoiser call sees).
    extra : int
        Bytes the solve holds beyond the estimate (SMC: every stored particle).
    options : dict
        Options the plan sets because the caller left them out (SMC: ``chunk_size``).
    """

    x_shape: tuple[int, ...]
    extra: int
    options: dict[str, Any]


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType({k: MappingProxyType(dict(v)) if isinstance(v, Mapping) else v
                             for k, v in dict(mapping).items()})


@dataclass(frozen=True)
class SolverInfo:
    """The descriptor of one solver: every fact pnpdiff uses about it outside its loop.

    Parameters
    ----------
    name : str
        The method name ``solve(method=...)`` and recipes accept.
    function : callable
        The solver, ``function(y, operator, prior, sigmas, sigma_y, ..., generator, progress)``.
    defaults : mapping
        ``(prior family, task) -> options``: the defaults of ``solve`` (``"*"`` matches any prior
        or task; the most specific entry wins, see :func:`pnpdiff.api.default_options`).
    memory_cost : (float, float) or None
        The image-sized working tensors at the method's peak (in units of ``x``) and its fixed
        overhead in MiB (:func:`pnpdiff.costs.estimate_solve_bytes`); ``None``: the conservative
        :data:`pnpdiff.costs.DEFAULT_METHOD_COST`.
    backprop : bool
        Whether the method differentiates through the denoiser (``torch.autograd.grad`` through
        ``prior.denoise``: the whole graph of one call is alive at the peak).
    point_estimate : bool
        Whether the result does not depend on the seed (its "posterior samples" have no spread).
    option_ranges : mapping
        ``option -> (low, high, low excluded)``, ``None`` for no bound: checked by ``solve``
        before anything runs (:data:`pnpdiff.api.OPTION_RANGES`).
    memory_advice : str, optional
        What a memory refusal advises for this method, in place of the generic "a method without
        backpropagation" of a backprop method.
    inner_calls : str, optional
        The option giving the denoiser calls per step of a method with an inner loop
        (:func:`pnpdiff.posterior.expected_calls`).
    expected_calls : callable, optional
        ``expected_calls(n, steps, options, values) -> int``: the denoiser calls of
        :func:`pnpdiff.sample_posterior` for ``n`` samples, for a method whose calls are not
        ``n x steps x inner calls``.
    plan_memory : callable, optional
        ``plan_memory(x_shape, element_size, options, params, fit) -> MemoryPlan`` for a method
        whose memory is not that of one solve of ``x_shape``; ``fit(n, *, extra, scale_y)`` is
        the largest count of ``x_shape`` copies that fits the budget
        (:func:`pnpdiff.costs.largest_fitting_batch`).
    population : str, optional
        The option holding the size of the one run's population (SMC: ``particles``): such a
        method draws :func:`pnpdiff.sample_posterior`'s ``n`` samples from one run itself,
        through its ``samples`` option.
    noise_models : tuple of str
        The noise models (:data:`pnpdiff.noise.NOISE_MODELS`) whose likelihood the method uses
        itself, through its ``noise`` argument; for the others ``solve`` denoises through the
        variance-stabilising transform or refuses (:func:`pnpdiff.api.solve`'s ``noise``).
    """

    name: str
    function: Callable[..., Any]
    defaults: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    memory_cost: tuple[float, float] | None = None
    backprop: bool = False
    point_estimate: bool = False
    option_ranges: Mapping[str, OptionRange] = field(default_factory=dict)
    memory_advice: str | None = None
    inner_calls: str | None = None
    expected_calls: Callable[..., int] | None = None
    plan_memory: Callable[..., MemoryPlan] | None = None
    population: str | None = None
    noise_models: tuple[str, ...] = ("gaussian",)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueRangeError(f"a solver's name must be a non-empty string, got {self.name!r}")
        if not callable(self.function):
            raise ValueRangeError(f"solver {self.name!r}: function must be callable, got {self.function!r}")
        object.__setattr__(self, "defaults", _frozen(self.defaults))
        object.__setattr__(self, "option_ranges", MappingProxyType(dict(self.option_ranges)))


#: every method of ``solve`` by name, in registration order (:func:`register`)
DESCRIPTORS: dict[str, SolverInfo] = {}
#: the unconditional samplers of :func:`pnpdiff.sample` (their memory cost): not methods of ``solve``
SAMPLER_DESCRIPTORS: dict[str, SolverInfo] = {}
#: method name -> solver function (what ``solve(method=...)`` accepts); kept in step by :func:`register`
SOLVERS: dict[str, Callable[..., Any]] = {}


def register(info: SolverInfo, *, sampler: bool = False) -> SolverInfo:
    """Register a solver (or, with ``sampler=True``, an unconditional sampler) by its descriptor.

    Parameters
    ----------
    info : SolverInfo
        The descriptor; a method of the same name is replaced.
    sampler : bool
        Register an unconditional sampler of :func:`pnpdiff.sample` (its memory cost only; it is
        not a method of ``solve``).

    Returns
    -------
    SolverInfo
        ``info`` itself.
    """
    if not isinstance(info, SolverInfo):
        raise ValueRangeError(f"register takes a SolverInfo, got {type(info).__name__}")
    if sampler:
        SAMPLER_DESCRIPTORS[info.name] = info
    else:
        DESCRIPTORS[info.name] = info
        SOLVERS[info.name] = info.function
    return info


def unregister(name: str) -> None:
    """Remove a solver (and a sampler) of that name from the registry; nothing if there is none.

    Parameters
    ----------
    name : str
        The method's name.
    """
    DESCRIPTORS.pop(name, None)
    SOLVERS.pop(name, None)
    SAMPLER_DESCRIPTORS.pop(name, None)


def descriptor(name: str) -> SolverInfo | None:
    """The descriptor of a method of ``solve`` or of a sampler, ``None`` for an unknown name.

    The facts are the registered descriptor's even when :data:`SOLVERS` maps the name to another
    function (a wrapper put there by hand: ``solve`` calls that one); a function put into
    :data:`SOLVERS` by hand without a descriptor gets a bare one (no defaults, the default memory
    cost, no backpropagation).

    Parameters
    ----------
    name : str
        The method's name.

    Returns
    -------
    SolverInfo or None
    """
    info = DESCRIPTORS.get(name)
    if info is not None:
        return info
    fn = SOLVERS.get(name)
    if fn is not None:
        return SolverInfo(name, fn)
    return SAMPLER_DESCRIPTORS.get(name)


class DerivedTable(Mapping[Any, Any]):
    """A read-only mapping computed from the registry at every access: a view, never a stale copy.

    Parameters
    ----------
    build : callable
        ``build() -> dict``, reading :data:`DESCRIPTORS` (and :data:`SAMPLER_DESCRIPTORS`).
    doc : str
        What the table is, for its ``repr``.
    """

    def __init__(self, build: Callable[[], dict[Any, Any]], doc: str = "") -> None:
        self._build = build
        self._doc = doc

    def __getitem__(self, key: Any) -> Any:
        return self._build()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._build())

    def __len__(self) -> int:
        return len(self._build())

    def __repr__(self) -> str:
        return f"{self._build()!r}"


class DerivedSet(Set[str]):
    """A read-only set of method names computed from the registry at every access.

    Parameters
    ----------
    build : callable
        ``build() -> iterable of names``.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build

    def _names(self) -> frozenset[str]:
        return frozenset(self._build())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._names()))

    def __len__(self) -> int:
        return len(self._names())

    def __hash__(self) -> int:
        return hash(self._names())

    def __repr__(self) -> str:
        return f"frozenset({set(sorted(self._names()))!r})"
