"""Docstrings of overrides: one written contract per method, shared by every subclass."""

from __future__ import annotations

import inspect
import re

_SECTION = re.compile(r"^(Parameters|Returns)\n-+$", re.M)


def contract_sections(doc: str | None) -> str | None:
    """The NumPy sections of ``doc`` from its ``Parameters`` (or, without one, ``Returns``) header on."""
    if not doc:
        return None
    text = inspect.cleandoc(doc)
    m = _SECTION.search(text)
    return text[m.start():] if m else None


def inherit_sections(cls: type, base: type) -> None:
    """Give each method of ``cls`` that overrides a method of ``base`` and documents only *how* it
    computes (its docstring has no ``Parameters`` / ``Returns`` section) the base method's
    sections: the base class writes the contract once, its overrides do not copy it."""
    for name, fn in vars(cls).items():
        if not callable(fn) or not fn.__doc__ or name not in vars(base):
            continue
        contract = contract_sections(vars(base)[name].__doc__)
        if contract is not None and contract_sections(fn.__doc__) is None:
            fn.__doc__ = inspect.cleandoc(fn.__doc__).rstrip() + "\n\n" + contract
