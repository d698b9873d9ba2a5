"""Sphinx configuration of the pnpdiff documentation site.

Build it (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

``-D plot_gallery=0`` skips executing the gallery (for a quick look at the pages).
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("MPLBACKEND", "agg")
# The gallery runs on whatever machine builds the docs; its examples are written for one thread
# per process, which is also the fastest on a small shared CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pnpdiff  # noqa: E402

project = "pnpdiff"
author = "pnpdiff developers"
copyright = "2026, pnpdiff developers"  # noqa: A001
release = pnpdiff.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "sphinxcontrib.bibtex",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5", "_intersphinx"]
templates_path = ["_templates"]

# -- MyST (the Markdown pages) ----------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- autodoc / autosummary / napoleon ---------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_preserve_defaults = True
autoclass_content = "class"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True

# -- intersphinx ------------------------------------------------------------------------------
# The online inventories are tried first; on a machine without network (CI here) the small
# offline inventories written below keep the links to the same pages of the same sites.
_FALLBACK = {
    "python": ("https://docs.python.org/3/", "Python", [
        ("str", "py:class", "library/stdtypes.html#$"),
        ("int", "py:class", "library/functions.html#$"),
        ("float", "py:class", "library/functions.html#$"),
        ("bool", "py:class", "library/functions.html#$"),
        ("dict", "py:class", "library/stdtypes.html#$"),
        ("list", "py:class", "library/stdtypes.html#$"),
        ("tuple", "py:class", "library/stdtypes.html#$"),
        ("callable", "py:function", "library/functions.html#$"),
        ("None", "py:data", "library/constants.html#$"),
        ("pathlib.Path", "py:class", "library/pathlib.html#$"),
        ("ValueError", "py:exception", "library/exceptions.html#$"),
        ("TypeError", "py:exception", "library/exceptions.html#$"),
        ("KeyError", "py:exception", "library/exceptions.html#$"),
        ("FileNotFoundError", "py:exception", "library/exceptions.html#$"),
        ("FileExistsError", "py:exception", "library/exceptions.html#$"),
        ("MemoryError", "py:exception", "library/exceptions.html#$"),
        ("OSError", "py:exception", "library/exceptions.html#$"),
        ("RuntimeError", "py:exception", "library/exceptions.html#$"),
        ("Exception", "py:exception", "library/exceptions.html#$"),
        ("UserWarning", "py:exception", "library/exceptions.html#$"),
    ]),
    "torch": ("https://docs.pytorch.org/docs/stable/", "PyTorch", [
        ("torch.Tensor", "py:class", "tensors.html#$"),
        ("torch.nn.Module", "py:class", "generated/$.html#$"),
        ("torch.Generator", "py:class", "generated/$.html#$"),
        ("torch.device", "py:class", "tensor_attributes.html#$"),
        ("torch.dtype", "py:class", "tensor_attributes.html#$"),
        ("torch.no_grad", "py:class", "generated/$.html#$"),
        ("torch.compile", "py:function", "generated/$.html#$"),
        ("torch.autocast", "py:class", "amp.html#$"),
        ("torch.fft.fft2", "py:function", "generated/$.html#$"),
    ]),
    "numpy": ("https://numpy.org/doc/stable/", "NumPy", [
        ("numpy.ndarray", "py:class", "reference/generated/$.html#$"),
        ("numpy.random.Generator", "py:class", "reference/random/generator.html#$"),
    ]),
    "deepinv": ("https://deepinv.github.io/deepinv/", "deepinv", [
        ("deepinv.physics.Physics", "py:class", "api/stubs/$.html#$"),
        ("deepinv.physics.LinearPhysics", "py:class", "api/stubs/$.html#$"),
        ("deepinv.physics.DecomposablePhysics", "py:class", "api/stubs/$.html#$"),
        ("deepinv.models.Denoiser", "py:class", "api/stubs/$.html#$"),
    ]),
}


def _write_inventory(path: Path, project_name: str, entries: list[tuple[str, str, str]]) -> None:
    """Write a version-2 Sphinx inventory (``objects.inv``) holding ``entries``."""
    body = "".join(f"{name} {role} 1 {uri} -\n" for name, role, uri in entries)
    header = (f"# Sphinx inventory version 2\n# Project: {project_name}\n# Version: \n"
              "# The remainder of this file is compressed using zlib.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode() + zlib.compress(body.encode()))


intersphinx_mapping = {}
for _key, (_url, _name, _entries) in _FALLBACK.items():
    _inv = DOCS / "_build" / "intersphinx" / f"{_key}.inv"
    _write_inventory(_inv, _name, _entries)
    intersphinx_mapping[_key] = (_url, (None, str(_inv)))
intersphinx_timeout = 3

# -- bibliography -----------------------------------------------------------------------------
bibtex_bibfiles = ["references.bib"]
bibtex_default_style = "plain"
bibtex_reference_style = "author_year"

# -- gallery ----------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
    "image_scrapers": ("matplotlib",),
    "min_reported_time": 1,
    "show_memory": False,
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
}

# -- HTML -------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"pnpdiff {release}"
html_static_path = ["_static"]
html_theme_options = {"navigation_with_keys": True}
