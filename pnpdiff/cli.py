"""Command line: ``python -m pnpdiff RECIPE.yaml [--output DIR] [--steps N] [--device DEV]``."""

from __future__ import annotations

import argparse
import json
import sys

from pnpdiff.errors import PnPError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run a recipe; print a user error on one line and return 2, print the metrics on success."""
    parser = argparse.ArgumentParser(
        prog="python -m pnpdiff",
        description="Restore an image as described by a YAML recipe (see recipes/).",
    )
    parser.add_argument("recipe", help="path to a YAML recipe, e.g. recipes/deblur.yaml")
    parser.add_argument("--output", help="output folder (overrides the recipe's 'output')")
    parser.add_argument("--steps", type=int, help="number of solver steps (overrides the recipe)")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    try:
        from pnpdiff.recipes import load_recipe, run_recipe

        recipe = load_recipe(args.recipe)
        metrics = run_recipe(recipe, output=args.output, steps=args.steps, device=args.device,
                             progress=not args.no_progress)
    except PnPError as err:
        msg = " ".join(str(err).split())
        print(f"pnpdiff: error: {msg}", file=sys.stderr)
        return 2
    out = args.output or recipe.output
    print(json.dumps(metrics, indent=2))
    print(f"wrote {out}/")
    return 0
