"""The one YAML loader of pnpdiff: recipes, training and sample recipes, peer configs, overrides.

A recipe is a small YAML file, read with ``yaml.SafeLoader`` plus four rules:

* **Bounds before work.** A file larger than :data:`MAX_BYTES` (1 MiB) is refused before it is
  read; a document nested deeper than :data:`MAX_DEPTH` (50 levels) or holding more than
  :data:`MAX_NODES` (100,000) values *once its aliases are expanded* is refused while it is
  composed, before anything is built (a "billion laughs" alias bomb is refused at the first alias
  that crosses the bound, in milliseconds; 5,000 nested ``[`` give one line, not a
  ``RecursionError``).
* **Scientific notation is a float.** YAML 1.1 (PyYAML) reads ``1e-2`` as a string (it wants
  ``1.0e-2``); here ``1e-2``, ``5E-3``, ``1.5e+3`` and ``2e3`` are floats. Integers stay integers.
* **A key is given once.** A mapping that repeats a key (at any level) is refused, naming the key
  and both lines; YAML merge keys (``<<: *base``) still work.
* **``!!python/tuple``** (DPS's configs) is read as a tuple; every other ``python/*`` tag is refused,
  as by ``yaml.safe_load``.

:func:`load_yaml` parses text, :func:`read_yaml_file` a file; both raise
:class:`~pnpdiff.errors.RecipeError` with one line naming the file (or override) for a broken rule.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from pnpdiff.errors import InputFileError, RecipeError


def resolve_path(p: str, base: Path | None) -> str:
    """A path as written in a recipe: ``~`` expanded, relative ones joined to ``base``."""
    path = Path(p).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path)


def is_path_spec(s: str) -> bool:
    return not s.startswith("skimage:")


def is_glob(s: str) -> bool:
    return any(ch in s for ch in "*?[")


def is_batch_spec(spec: str) -> bool:
    """Whether an ``image`` / ``observed`` value names several images: a folder or a glob."""
    return is_path_spec(spec) and (is_glob(spec) or Path(spec).is_dir())


def read_recipe_data(p: Path) -> Any:
    """The parsed YAML of a recipe file (:func:`pnpdiff.config.files.read_yaml_file`: ``yaml.safe_load``
    with limits on size, depth and aliases, ``1e-2`` as a float, no duplicate key, plus the
    ``!!python/tuple`` tag of DPS's configs), with one-line errors."""
    return read_yaml_file(p)


#: keys whose values are paths; given on the command line they are relative to the current directory
PATH_KEYS = ("image", "observed", "output", "operator.mask", "prior.path")


def apply_overrides(data: Any, overrides: list[str], where: str = "") -> dict[str, Any]:
    """Apply command-line ``KEY=VALUE`` overrides to a parsed recipe.

    ``KEY`` is a dotted path into the recipe (``steps``, ``operator.sigma``, ``noise.sigma_y``,
    ``options.lam``); ``VALUE`` is read as YAML (``5`` is an int, ``2.0`` a float, ``[64, 96]`` a
    list, ``true`` a bool, anything else a string). A path value (``image``, ``observed``,
    ``output``, ``operator.mask``, ``prior.path``) is relative to the current directory. The
    result is validated by :func:`parse_recipe` like the file itself.
    """
    import copy

    from pnpdiff.config.files import load_yaml

    out = copy.deepcopy(data) if isinstance(data, dict) else data
    if not isinstance(out, dict):
        raise RecipeError(f"{where}a recipe is a mapping of keys to values (see recipes/deblur.yaml)")
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or not key or any(not k for k in parts):
            raise RecipeError(f"override {item!r}: expected KEY=VALUE with KEY a dotted recipe key (e.g. steps=5, "
                              "operator.sigma=2)")
        try:  # the recipe loader's rules (1e-2 is a float, limits, no duplicate key)
            value = load_yaml(text, f"{where}override {key}: ") if text.strip() else None
        except yaml.YAMLError:
            value = text
        if key in PATH_KEYS and isinstance(value, str) and not value.startswith("skimage:"):
            value = str(Path(value).expanduser().resolve())
        if key == "prior" and isinstance(value, str) and ":" in value:
            head, tail = value.split(":", 1)
            if len(head) > 1 and tail:
                value = f"{head}:{Path(tail).expanduser().resolve()}"
        node: Any = out
        for i, k in enumerate(parts[:-1]):
            child = node.get(k)
            if k == "operator" and isinstance(child, str):  # operator: Identity -> {name: Identity}
                child = {"name": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise RecipeError(f"override {key}: {'.'.join(parts[:i + 1])} is {child!r}, not a mapping")
            node[k] = child
            node = child
        node[parts[-1]] = value
        if key == "image":
            out.pop("observed", None)
        if key == "observed":
            out.pop("image", None)
    return out


def absolute_spec(spec: str) -> str:
    """A path spec as ``--dry-run`` and ``recipe.yaml`` show it: absolute (a glob too), so that it
    names the same files from any folder; ``skimage:NAME`` as it is."""
    return spec if not is_path_spec(spec) else os.path.abspath(spec)


#: the largest recipe file read (bytes)
MAX_BYTES = 1 << 20

#: the deepest nesting of sequences and mappings accepted
MAX_DEPTH = 50

#: the most values (scalars, sequences, mappings, keys included) a document may hold, aliases expanded
MAX_NODES = 100_000

_SMALL = "a recipe is a small YAML file"


class RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with pnpdiff's limits, scientific-notation floats, duplicate-key refusal
    and the ``!!python/tuple`` tag (see the module docstring).

    ``yaml.SafeLoader`` itself is left unchanged. ``where`` prefixes the error messages.
    """

    def __init__(self, stream: Any, where: str = "") -> None:
        super().__init__(stream)
        self.where = where
        self._depth = 0
        self._nodes = 0
        # id(node) -> (values it holds aliases expanded, its nesting height); nodes stay alive in anchors
        self._sizes: dict[int, tuple[int, int]] = {}

    def _refuse(self, mark: Any, msg: str) -> RecipeError:
        line = f"line {mark.line + 1}: " if mark is not None else ""
        return RecipeError(f"{self.where}{line}{msg}")

    def _count(self, n: int, mark: Any) -> None:
        self._nodes += n
        if self._nodes > MAX_NODES:
            raise self._refuse(mark, f"more than {MAX_NODES:,} values once aliases (*name) are expanded; {_SMALL} "
                                     "(write the values out, or split the file)")

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML's hook
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size, height = self._sizes.get(id(node), (1, 0))
            if self._depth + height > MAX_DEPTH:
                raise self._refuse(mark, f"nested more than {MAX_DEPTH} levels deep once aliases are expanded; "
                                         f"{_SMALL}")
            self._count(size, mark)
            return node
        nested = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        self._depth += nested
        if self._depth > MAX_DEPTH:
            raise self._refuse(mark, f"nested more than {MAX_DEPTH} levels deep; {_SMALL}")
        before = self._nodes
        self._count(1, mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= nested
        height = 0
        if nested:
            for child in node.value:
                for sub in child if isinstance(child, tuple) else (child,):
                    height = max(height, self._sizes.get(id(sub), (1, 0))[1])
            height += 1
        self._sizes[id(node)] = (self._nodes - before, height)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # noqa: D102 - PyYAML's hook
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=False)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: PyYAML's own error follows
                    continue
                if first is not key_node:
                    raise self._refuse(
                        key_node.start_mark,
                        f"duplicate key {key!r} (first given on line {first.start_mark.line + 1}); give each key once",
                    )
        return super().construct_mapping(node, deep=deep)


def _construct_tuple(loader: RecipeLoader, node: yaml.Node) -> tuple:
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"!!python/tuple expects a sequence such as [1, 3, 256, 256], found a {node.id}",
            node.start_mark,
        )
    return tuple(loader.construct_sequence(node, deep=True))


RecipeLoader.add_constructor("tag:yaml.org,2002:python/tuple", _construct_tuple)

# 1e-2, 5E-3, 1.5e+3, .5e-3, 2e3: floats (YAML 1.1 wants a dot and a signed exponent: 1.0e-2)
RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str, where: str = "") -> Any:
    """Parse YAML text like ``yaml.safe_load``, with pnpdiff's rules (see the module docstring).

    Parameters
    ----------
    text : str
        The YAML document.
    where : str
        Prefix of the error messages (``"recipe.yaml: "``).

    Returns
    -------
    Any
        The parsed document; ``!!python/tuple [..]`` gives a Python tuple, ``1e-2`` a float.

    Raises
    ------
    RecipeError
        A document larger than :data:`MAX_BYTES`, nested deeper than :data:`MAX_DEPTH`, holding more
        than :data:`MAX_NODES` values once aliases are expanded, or repeating a key.
    yaml.YAMLError
        Invalid YAML, or any tag ``yaml.safe_load`` refuses other than ``!!python/tuple``.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise RecipeError(f"{where}{size:,} bytes of YAML; {_SMALL} (at most {MAX_BYTES:,} bytes)")
    loader = RecipeLoader(text, where)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_file(path: str | os.PathLike, where: str | None = None) -> Any:
    """Read and parse a YAML file with :func:`load_yaml`, refusing a large file before reading it.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    where : str, optional
        Prefix of the error messages; default ``"PATH: "``.

    Returns
    -------
    Any
        The parsed document.

    Raises
    ------
    InputFileError
        When the file does not exist or is a folder.
    RecipeError
        When it cannot be read, is larger than :data:`MAX_BYTES`, is not UTF-8 or valid YAML, or
        breaks a rule of :func:`load_yaml`; the one-line message names the file.
    """
    p = Path(path)
    where = f"{p}: " if where is None else where
    if p.is_dir():
        raise InputFileError(f"recipe {p} is a folder; pass a YAML file such as recipes/deblur.yaml")
    if not p.is_file():
        raise InputFileError(f"recipe file not found: {p}")
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(MAX_BYTES + 1) if size <= MAX_BYTES else b""
        if size > MAX_BYTES or len(data) > MAX_BYTES:
            size = max(size, len(data))
            raise RecipeError(f"recipe {p} is {size:,} bytes; {_SMALL} (at most {MAX_BYTES:,} bytes)")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        msg = err.strerror if isinstance(err, OSError) and err.strerror else "not a UTF-8 text file"
        raise RecipeError(f"cannot read recipe {p}: {msg}") from None
    try:
        return load_yaml(text, where)
    except yaml.YAMLError as err:
        raise RecipeError(f"{p} is not valid YAML: {' '.join(str(err).split())}") from None
