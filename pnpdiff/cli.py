"""Command line: ``pnpdiff RECIPE.yaml [--output DIR] [--steps N] [--device DEV] [--overwrite]``
(also ``python -m pnpdiff ...``).

Exit status: 0 on success; 2 for a mistake the user can fix (bad recipe, missing file, output
folder not pnpdiff's, run too large for the memory, ...), printed on one line without a
traceback; 130 when interrupted (Ctrl-C), after removing what the run had started to write.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from pnpdiff.errors import PnPError

__all__ = ["main"]


def _prog() -> str:
    """``python -m pnpdiff`` when run as a module, else the console script's own name."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if argv0 in ("__main__.py", "-m", "") or argv0.startswith("python"):
        return "python -m pnpdiff"
    return argv0 if argv0.endswith("pnpdiff") else "pnpdiff"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line (exit 2), like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _one_line(msg: object) -> str:
    return " ".join(str(msg).split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"pnpdiff: warning: {_one_line(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run a recipe; print a user error on one line and return 2, print the metrics on success."""
    prog = _prog()
    parser = _Parser(
        prog=prog,
        description="Restore an image as described by a YAML recipe (see recipes/).",
    )
    parser.add_argument("recipe", help="path to a YAML recipe, e.g. recipes/deblur.yaml")
    parser.add_argument("--output", help="output folder, relative to the current directory (overrides 'output')")
    parser.add_argument("--steps", type=_positive_int, help="number of solver steps (overrides the recipe)")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda (default: auto)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an existing folder that holds other files (they are never replaced)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            from pnpdiff.recipes import load_recipe, run_recipe

            recipe = load_recipe(args.recipe)
            out = args.output if args.output is not None else recipe.output
            metrics = run_recipe(recipe, output=args.output, steps=args.steps, device=args.device,
                                 progress=not args.no_progress, overwrite=args.overwrite)
    except PnPError as err:
        print(f"pnpdiff: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pnpdiff: interrupted; no partial output was left behind", file=sys.stderr)
        return 130
    print(json.dumps(metrics, indent=2))
    print(f"wrote {out}/")
    return 0
