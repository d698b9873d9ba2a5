"""Every public name has a NumPy-style docstring with the sections its API page shows.

The Sphinx API reference (autosummary + napoleon, NumPy style) renders these docstrings. This
test reads the sections from the raw docstrings (a ``Header`` line followed by a dashed line of
the same length), so it runs without Sphinx:

* a function has ``Parameters`` (when it takes any) and ``Returns`` (unless it returns ``None``;
  ``Yields`` for a generator);
* a class has ``Parameters`` (its constructor), and every public method a user calls, defined on
  the class itself, has ``Parameters`` and ``Returns`` by the same rule; an override without a
  docstring of its own is fine when a pnpdiff base class documents the method
  (``LinearOperator.forward``, ``Prior.denoise``, ...), since its page then shows the base's;
* an error class says which built-in exception it also is, and has ``Parameters`` (the message);
* a module exported as a name (``pnpdiff.operators``, ``pnpdiff.schedules``) has a docstring
  that names its contents;
* a name that implements a paper has a ``References`` section naming one of its authors.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest

import pnpdiff
import pnpdiff.operators
import pnpdiff.solvers

_HEADER = re.compile(r"^[ \t]*([A-Z][A-Za-z ]*[a-z])[ \t]*\n[ \t]*(-+)[ \t]*$", re.M)

#: modules whose ``__all__`` gets API pages, beyond ``pnpdiff`` and ``pnpdiff.operators``
EXTRA_MODULES = [
    "pnpdiff.schedules",
    "pnpdiff.priors",
    "pnpdiff.metrics",
    "pnpdiff.guidance",
    "pnpdiff.training",
    "pnpdiff.unet",
    "pnpdiff.datasets",
    "pnpdiff.solvers",
    "pnpdiff.calibrate",
    "pnpdiff.problem",
]

#: methods of ``torch.nn.Module`` subclasses that the library user does not call
_SKIP_METHODS = {"extra_repr"}

#: names that implement a paper -> the surname of one of its authors (written here on purpose,
#: independently of the docstrings)
PAPERS: dict[str, str] = {
    # solvers (the registry of ``pnpdiff.solve(method=...)``) and samplers
    "solvers:diffpir": "Zhu",
    "solvers:ddrm": "Kawar",
    "solvers:ddnm": "Wang",
    "solvers:ddnm+": "Wang",
    "solvers:dpir": "Zhang",
    "solvers:mmse": "Efron",
    "solvers:dps": "Chung",
    "solvers:pigdm": "Vahdat",
    "solvers:reddiff": "Mardani",
    "solvers:smc": "Cardoso",
    "solvers:daps": "Berner",
    "solvers:pnpdm": "Bouman",
    "pnpdiff.solvers.ddpm": "Ho",
    "pnpdiff.solvers.ddim": "Ermon",
    "pnpdiff.solvers.euler": "Karras",
    "pnpdiff.solvers.heun": "Karras",
    # top level
    "pnpdiff.sample_posterior": "Cardoso",
    "pnpdiff.sample": "Salimans",
    "pnpdiff.train": "Karras",
    "pnpdiff.train_classifier": "Dhariwal",
    # operators
    "pnpdiff.operators.Downsample": "Zhao",
    "pnpdiff.operators.Colorize": "Wang",
    "pnpdiff.operators.MotionBlur": "Boracchi",
    "pnpdiff.operators.motion_kernel": "Boracchi",
    "pnpdiff.operators.freeform_mask": "Yu",
    "pnpdiff.operators.PhaseRetrieval": "Chung",
    # schedules
    "pnpdiff.schedules.ddpm_alphas_cumprod": "Ho",
    "pnpdiff.schedules.ddpm": "Ho",
    "pnpdiff.schedules.cosine": "Nichol",
    "pnpdiff.schedules.karras": "Karras",
    # priors
    "pnpdiff.priors.FFDNet": "Zuo",
    "pnpdiff.priors.FFDNetPrior": "Zuo",
    "pnpdiff.priors.EpsPrior": "Ho",
    "pnpdiff.priors.VPEpsPrior": "Ho",
    "pnpdiff.priors.EDMPrior": "Karras",
    "pnpdiff.priors.ddpm_alphas_cumprod": "Ho",
    "pnpdiff.priors.ADMUNet": "Dhariwal",
    "pnpdiff.priors.ADMPrior": "Dhariwal",
    "pnpdiff.priors.load_adm": "Dhariwal",
    "pnpdiff.priors.TrainedPrior": "Karras",
    "pnpdiff.priors.TrainedClassifier": "Dhariwal",
    "pnpdiff.priors.mcgdiff_mixture": "Cardoso",
    "pnpdiff.priors.random_svd_operator": "Cardoso",
    # metrics, guidance, training, networks
    "pnpdiff.metrics.ssim": "Bovik",
    "pnpdiff.guidance.GuidedPrior": "Salimans",
    "pnpdiff.guidance.guided": "Salimans",
    "pnpdiff.unet.NoiseClassifier": "Dhariwal",
    # calibration without ground truth
    "pnpdiff.calibrate.sure_denoise": "Stein",
    "pnpdiff.calibrate.mc_divergence": "Ramani",
    "pnpdiff.calibrate.sure_projected": "Eldar",
    "pnpdiff.calibrate.select": "Ramani",
}


def sections(doc: str | None) -> dict[str, str]:
    """The NumPy sections of a docstring, header -> body (up to the next header)."""
    doc = inspect.cleandoc(doc or "")
    found = [m for m in _HEADER.finditer(doc) if len(m.group(2)) == len(m.group(1))]
    out = {}
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(doc)
        out[m.group(1)] = doc[m.end():end]
    return out


def _collect() -> dict[str, Any]:
    items: dict[str, Any] = {}
    for mod_name in ["pnpdiff", "pnpdiff.operators", *EXTRA_MODULES]:
        mod = importlib.import_module(mod_name)
        for name in mod.__all__:
            items[f"{mod_name}.{name}"] = getattr(mod, name)
    for key, fn in pnpdiff.solvers.SOLVERS.items():
        items[f"solvers:{key}"] = fn
    return items


ITEMS = _collect()
ROUTINES = {k: v for k, v in ITEMS.items() if inspect.isfunction(v)}
CLASSES = {k: v for k, v in ITEMS.items() if inspect.isclass(v) and not issubclass(v, (BaseException, Warning))}
ERRORS = {k: v for k, v in ITEMS.items() if inspect.isclass(v) and issubclass(v, (BaseException, Warning))}
MODULES = {k: v for k, v in ITEMS.items() if inspect.ismodule(v)}


def _takes_parameters(fn: Callable, bound: bool = False) -> bool:
    params = list(inspect.signature(fn).parameters.values())
    if bound and params:
        params = params[1:]
    return bool(params)


def _returns_something(fn: Callable) -> bool:
    ret = inspect.signature(fn).return_annotation
    return ret not in (None, "None")


def _missing(fn: Callable, doc: str | None, bound: bool = False) -> list[str]:
    have = sections(doc)
    want = []
    if _takes_parameters(fn, bound):
        want.append("Parameters")
    if _returns_something(fn):
        want.append("Yields" if inspect.isgeneratorfunction(fn) else "Returns")
    return [w for w in want if w not in have]


def _public_methods(cls: type) -> dict[str, Callable]:
    out = {}
    for name, attr in vars(cls).items():
        if (name.startswith("_") and name != "__call__") or name in _SKIP_METHODS:
            continue
        fn = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
        if inspect.isfunction(fn):
            out[name] = (fn, not isinstance(attr, staticmethod))
    return out


def _documented_on_base(cls: type, name: str) -> bool:
    """Whether a pnpdiff base class of ``cls`` defines ``name`` with full sections."""
    for base in cls.__mro__[1:]:
        if not base.__module__.startswith("pnpdiff") or name not in vars(base):
            continue
        attr = vars(base)[name]
        fn = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
        if inspect.isfunction(fn) and not _missing(fn, fn.__doc__, bound=not isinstance(attr, staticmethod)):
            return True
    return False


def test_the_lists_are_not_empty() -> None:
    assert len(ROUTINES) > 40 and len(CLASSES) > 25 and len(ERRORS) == 14 and len(MODULES) == 2
    assert set(pnpdiff.solvers.SOLVERS) <= {k.split(":")[1] for k in ITEMS if k.startswith("solvers:")}


@pytest.mark.parametrize("name", sorted(ROUTINES))
def test_function_has_parameters_and_returns(name: str) -> None:
    fn = ROUTINES[name]
    assert not _missing(fn, fn.__doc__), f"{name}: docstring lacks {_missing(fn, fn.__doc__)}"


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_has_parameters_and_documented_methods(name: str) -> None:
    cls = CLASSES[name]
    problems = []
    if "Parameters" not in sections(cls.__doc__):
        problems.append("class docstring: Parameters")
    for meth, (fn, bound) in _public_methods(cls).items():
        if fn.__doc__ is None:  # the API page shows the base's docstring (autodoc_inherit_docstrings)
            if not _documented_on_base(cls, meth):
                problems.append(f"{meth}: no docstring")
        elif _missing(fn, fn.__doc__, bound):
            problems.append(f"{meth}: {_missing(fn, fn.__doc__, bound)}")
    for meth, attr in vars(cls).items():
        if isinstance(attr, property) and not meth.startswith("_") and not (attr.__doc__ or "").strip():
            problems.append(f"property {meth}: no docstring")
    assert not problems, f"{name}: " + "; ".join(problems)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_says_when_and_which_builtin(name: str) -> None:
    cls = ERRORS[name]
    doc = cls.__doc__ or ""
    assert "Parameters" in sections(doc), f"{name}: no Parameters section (the message)"
    builtins = [b.__name__ for b in cls.__bases__ if b.__module__ == "builtins" and b is not Exception]
    for b in builtins:
        assert b in doc, f"{name}: the docstring does not say that it is also a {b}"
    summary = inspect.cleandoc(doc).split("\n\n")[0]
    assert len(summary) > 20, f"{name}: no summary of when it is raised"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_exported_module_lists_its_contents(name: str) -> None:
    mod = MODULES[name]
    doc = mod.__doc__ or ""
    public = [n for n in mod.__all__ if callable(getattr(mod, n))]
    absent = [n for n in public if n not in doc]
    assert not absent, f"{name}: the module docstring does not list {absent}"


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_paper_is_referenced(name: str) -> None:
    obj = ITEMS[name]
    refs = sections(obj.__doc__).get("References", "")
    assert refs.strip(), f"{name}: no References section"
    assert PAPERS[name] in refs, f"{name}: References do not name {PAPERS[name]}"
    assert re.search(r"(19|20)\d\d", refs), f"{name}: References give no year"
    assert re.search(r"https?://(arxiv\.org|doi\.org|openaccess|proceedings|openreview|papers\.nips)", refs), (
        f"{name}: References give no arXiv / DOI address"
    )


@pytest.mark.parametrize("name", sorted(ITEMS))
def test_no_global_citation_labels(name: str) -> None:
    """``.. [label]`` citations are global in Sphinx (they collide across pages); ``:cite:`` needs bibtex."""
    obj = ITEMS[name]
    docs = [obj.__doc__ or ""]
    if inspect.isclass(obj):
        docs += [fn.__doc__ or "" for fn, _ in _public_methods(obj).values()]
    for doc in docs:
        assert not re.search(r"^\s*\.\. \[[^\]]+\]|\]_|:cite:", doc, re.M), f"{name}: citation label or :cite:"


def test_sections_parser_detects_a_missing_section() -> None:
    def documented(a: int) -> int:
        """Doc.

        Parameters
        ----------
        a : int
            A.

        Returns
        -------
        int
            A.
        """
        return a

    def undocumented(a: int) -> int:
        """Doc.

        Parameters
        ----------
        a : int
            A.

        Returns
        ------
        int
            The underline is one short: not a section.
        """
        return a

    assert _missing(documented, documented.__doc__) == []
    assert _missing(undocumented, undocumented.__doc__) == ["Returns"]
