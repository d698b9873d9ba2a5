"""Batch runs: a recipe whose ``image`` / ``observed`` is a folder or a glob.

Layout of the output folder::

    OUTPUT/metrics.json   run settings, mean PSNR / SSIM, one entry per image
    OUTPUT/metrics.csv    one row per image
    OUTPUT/recipe.yaml    the resolved recipe (rerun it with python -m pnpdiff OUTPUT/recipe.yaml)
    OUTPUT/<name>/        one folder per input image (its file name without the extension):
                          observed.png, restored.png, ground_truth.png, comparison.png
                          (or what ``save`` names), intermediates.png (``intermediates: N``)

What a user can rely on:

* **Nothing finished is lost.** Images are solved ``batch_size`` at a time (one denoiser call
  per step for the whole batch; ``batch_size: auto``: per image shape, the largest batch whose
  estimated peak memory fits the run's budget, at most :data:`AUTO_BATCH_CAP` and the number of
  images of that shape, see :func:`batch_sizes`) and each image's folder is committed atomically
  as soon as its batch is done (:class:`pnpdiff.outputs.OutputFolder`); the run-level files are rewritten after
  every batch. An interrupted run (Ctrl-C, SIGTERM, a crash, a killed machine) keeps every image
  finished before the interruption.
* **Resume.** Run the same command again: an image whose folder holds all its files, unchanged,
  made with the same recipe (a fingerprint of every setting that changes its result, of its name
  and of the input file's bytes, kept in the folder's manifest) is skipped; the others are
  computed. ``batch_size``, ``device``, ``max_memory`` and ``output`` are not part of the
  fingerprint: they change how a run is carried out, not what it computes.
* **An image's result does not depend on its batch or process.** Its measurement noise and its
  solver noise come from seeds derived from the run's seeds and the image's name
  (:func:`derive_seed`), drawn from a generator of its own. Batches are formed from the images in
  name order, by shape; grey and colour images and images with different noise levels are solved
  in separate sub-batches.
* **Scale-out.** Under ``torchrun --nproc_per_node=N -m pnpdiff RECIPE`` (or any launcher that
  sets ``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR``) the batches are dealt round-robin to the
  ranks (``torch.distributed``: gloo on the CPU, NCCL with one GPU per rank); each rank writes its
  own images and rank 0 writes the merged metrics after a barrier. Every rank forms the same
  batches: with ``batch_size: auto`` the size of each shape is agreed after the group is joined
  (the smallest any rank chose: ranks may see different free memory), and a rank refused by its
  memory check stops every rank (none waits for it at a barrier). The output folder must be
  visible to every rank (a shared file system when the ranks run on several machines).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from pnpdiff import operators
from pnpdiff.api import check_solve_memory, is_grey_rgb, resolve_device
from pnpdiff.config.restore import AUTO_BATCH, Recipe, recipe_to_dict
from pnpdiff.costs import largest_fitting_batch
from pnpdiff.errors import InputFileError, MemoryLimitError, OutputFolderError, PnPError, RecipeError
from pnpdiff.io import IMAGE_SUFFIXES
from pnpdiff.outputs import OutputFolder, file_sha256
from pnpdiff.priors import load_prior
from pnpdiff.runs.distributed import Ranks, distributed
from pnpdiff.runs.measure import measure, measurement_shapes
from pnpdiff.runs.report import RUN_FILES, image_file_names, write_image_files, write_run_files
from pnpdiff.runs.solve import restore, run_settings

#: the largest batch ``batch_size: auto`` forms, per device type (others: as ``"cpu"``). On a CPU
#: each fourfold batch gains less (16 photos of 64^2, DiffPIR: 0.48 / 0.78 / 1.17 images per
#: second at batch 1 / 4 / 16) and little is left to win beyond 16, while an interrupted run loses
#: every unfinished image of its batch; a GPU keeps gaining until the device is full.
AUTO_BATCH_CAP = {"cpu": 16, "cuda": 64}

#: recipe keys that change how a run is carried out, not what it computes
_NOT_FINGERPRINTED = ("output", "image", "observed", "batch_size", "device", "max_memory", "task", "description")


def list_inputs(spec: str, exclude: str | os.PathLike | None = None) -> list[Path]:
    """The images a folder (its files with an image suffix, not recursive, hidden files skipped)
    or a glob (``photos/*.png``, ``data/**/*.jpg``) names, sorted by path; files under
    ``exclude`` (the run's output folder, which a recursive glob may reach) are left out."""
    p = Path(spec)
    if p.is_dir():
        files = [e for e in p.iterdir() if e.is_file() and not e.name.startswith(".")
                 and e.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise InputFileError(f"input folder {p} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    else:
        files = [Path(f) for f in glob.glob(spec, recursive=True) if Path(f).is_file()]
        matched = len(files)
        if exclude is not None:
            out = Path(exclude).resolve()
            files = [f for f in files if out not in f.resolve().parents]
        if not files and matched:
            raise InputFileError(
                f"the {matched} file(s) matching the input pattern {spec} are all inside the output folder "
                f"{exclude}, and a run never reads its own output folder as input: choose an output folder "
                "outside the images' folder")
        if not files:
            raise InputFileError(f"no file matches the input pattern {spec}")
    return sorted(files)


def input_root(spec: str) -> Path:
    """The folder a folder / glob input reads from: the folder itself, or the part of the glob
    before its first wildcard (``photos/*.png`` -> ``photos``)."""
    parts = Path(spec).parts
    for k, part in enumerate(parts):
        if any(ch in part for ch in "*?["):
            return Path(*parts[:k]) if k else Path(".")
    return Path(spec)


def _input_meta(spec: str) -> dict[str, str]:
    """What the run-level manifest records of the input: the spec and its folder's real path."""
    return {"input": os.path.abspath(spec), "input_realpath": os.path.realpath(input_root(spec))}


def check_input_folder(spec: str, target: Path) -> None:
    """Refuse what would make a batch run read or write through a replaced input folder: an output
    folder below an input folder that is a symbolic link (the results would land wherever the link
    points), and a resume in ``target`` whose input folder (the same ``spec``) now resolves to
    another real path than when the run started (moved, or replaced by a link to another folder)."""
    root = input_root(spec)
    if root.is_symlink():
        inside = Path(os.path.abspath(target))
        if Path(os.path.abspath(root)) in inside.parents:
            raise InputFileError(
                f"output folder {target} is inside the input folder {root}, which is a symbolic link (to "
                f"{os.readlink(root)}); pnpdiff never writes through a link: choose an output folder outside it")
    try:
        meta = OutputFolder(target, (), lock=False).recorded_meta()
    except OutputFolderError:
        return  # the run's own check names what is wrong with the folder
    now = _input_meta(spec)
    if meta and meta.get("input") == now["input"] and isinstance(meta.get("input_realpath"), str) \
            and meta["input_realpath"] != now["input_realpath"]:
        raise InputFileError(
            f"input folder {input_root(spec)} is now {now['input_realpath']}, not {meta['input_realpath']} as when "
            f"the run in {target} started (it was moved or replaced by a symbolic link); pnpdiff does not resume "
            "through it: put the original folder back, or choose another output folder")


def image_names(paths: list[Path]) -> list[str]:
    """Each input's name (its file name without the extension): the name of its output folder
    and of its seeds. Two inputs with the same name are an error."""
    names = [p.stem for p in paths]
    seen: dict[str, Path] = {}
    for p, n in zip(paths, names):
        if n in seen:
            raise RecipeError(f"inputs {seen[n]} and {p} would share the output folder {n!r}; rename one of them")
        if n.startswith(".") or n in RUN_FILES:
            raise RecipeError(f"input {p}: its name {n!r} cannot be an output folder; rename it")
        seen[n] = p
    return names


def derive_seed(seed: int, name: str, stream: str) -> int:
    """The seed of image ``name`` for the random ``stream`` (``"noise"``: the simulated
    measurement noise, ``"solver"``: the solver's draws) of a run seeded ``seed``, a 63-bit hash
    of all three: the same image gets the same noise in any batch, process or later run, and its
    two streams are independent even when both seeds are equal."""
    digest = hashlib.sha256(f"pnpdiff/{stream}/{int(seed)}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def fingerprint(recipe: Recipe, steps: int, name: str, source: Path) -> str:
    """What an image's result depends on, hashed: the recipe's settings (without the keys in
    ``_NOT_FINGERPRINTED``), the steps run, the image's name and its file's bytes."""
    settings = {k: v for k, v in recipe_to_dict(recipe).items() if k not in _NOT_FINGERPRINTED}
    settings["steps"] = steps
    blob = json.dumps({"recipe": settings, "name": name, "source": file_sha256(source)}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _summary(settings: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """metrics.json of a batch run: the settings, the means over the images, one entry each."""
    out: dict[str, Any] = {**settings, "images": len(rows)}
    for key in ("psnr_observed", "psnr_restored", "ssim_observed", "ssim_restored"):
        vals = [r[key] for r in rows if key in r]
        if vals and len(vals) == len(rows):
            out[f"{key}_mean"] = round(sum(vals) / len(vals), 4)
    out["seconds"] = round(sum(float(r.get("seconds", 0.0)) for r in rows), 3)
    out["per_image"] = rows
    return out


def scan(recipe: Recipe, target: Path, n_steps: int, overwrite: bool
         ) -> tuple[list[str], dict[str, dict[str, Any]], list[tuple[str, Path, OutputFolder]]]:
    """What a batch run into ``target`` would do, reading only: the image names (in order), the
    finished ones (name -> their metrics row) and the rest as ``(name, path, OutputFolder)``,
    each checked to be writable (an :class:`~pnpdiff.OutputFolderError` otherwise)."""
    check_input_folder(recipe.input_spec, target)
    paths = list_inputs(recipe.input_spec, exclude=target)
    names = image_names(paths)
    per_image = image_file_names(recipe)
    done: dict[str, dict[str, Any]] = {}
    todo: list[tuple[str, Path, OutputFolder]] = []
    for name, path in zip(names, paths):
        fp = fingerprint(recipe, n_steps, name, path)
        # covered by the top folder's lock; OutputFolder refuses an image folder that is a link
        folder = OutputFolder(target / name, per_image, overwrite=overwrite, meta={"fingerprint": fp}, lock=False)
        meta = folder.finished()
        if meta is not None and meta.get("fingerprint") == fp and isinstance(meta.get("metrics"), dict):
            done[name] = meta["metrics"]
        else:
            folder.check()
            todo.append((name, path, folder))
    return names, done, todo


_Shape = tuple[int, ...]

_Item = tuple[str, Path, OutputFolder]


def batch_sizes(recipe: Recipe, todo: list[_Item], prior: Any, device: str | torch.device | None = None,
                world: int = 1, *, shapes: list[_Shape] | None = None, extra: int = 0) -> dict[_Shape, int]:
    """The batch size of each image shape among ``todo`` (the ``x`` shape of one image -> size).

    An integer ``batch_size`` applies to every shape. ``batch_size: auto`` gives, per shape, the
    largest batch whose estimated peak memory (:func:`pnpdiff.costs.estimate_solve_bytes`) fits
    the run's budget (``max_memory``, else ``PNPDIFF_MAX_MEMORY``, else the usable memory of
    ``device``: :func:`pnpdiff.memory.memory_limit`), at most the number of images of that shape
    (split among ``world`` processes, so that each gets a batch), and at most
    :data:`AUTO_BATCH_CAP` for the device type. It is 1 when not even one image fits: the run's
    memory check then refuses it with a :class:`~pnpdiff.MemoryLimitError`. Under torchrun the
    ranks agree on the smallest of their sizes (:func:`run_batch`).

    Parameters
    ----------
    recipe : Recipe
        The batch recipe.
    todo : list
        The images to compute, ``(name, path, OutputFolder)`` as :func:`scan` returns them.
    prior : Prior or str
        The loaded prior (or its name: the estimate then counts its weights too).
    device : str or torch.device or None
        Where the solves run (``None``: the CPU).
    world : int
        Number of processes sharing the images.
    shapes : list of tuple, optional
        The ``x`` shape of each image of ``todo`` (default: read from the files' headers).
    extra : int
        Bytes added to every estimate (negative: taken off, as ``--dry-run`` does for the weights
        of a prior named but not loaded when the budget is a fixed one).

    Returns
    -------
    dict
        ``{x shape (1, C, H, W): batch size}``, shapes in order of first appearance.
    """
    if shapes is None:
        shapes = [measurement_shapes(recipe, str(item[1]))[0] for item in todo]
    counts: dict[_Shape, tuple[str, int]] = {}  # shape -> (an image of it, how many)
    for item, shape in zip(todo, shapes):
        spec, n = counts.get(shape, (str(item[1]), 0))
        counts[shape] = (spec, n + 1)
    if recipe.batch_size != AUTO_BATCH:
        return {shape: int(recipe.batch_size) for shape in counts}
    dev = torch.device(device) if device is not None else torch.device("cpu")
    cap = AUTO_BATCH_CAP.get(dev.type, AUTO_BATCH_CAP["cpu"])
    sizes: dict[_Shape, int] = {}
    for shape, (spec, n) in counts.items():
        x_shape, y_shape = measurement_shapes(recipe, spec)
        most = min(n, cap, -(-n // max(1, world)))
        sizes[shape] = largest_fitting_batch(x_shape, y_shape, prior, recipe.resolved_method, most, dev,
                                             recipe.max_memory, torch.float32, extra=extra)
    return sizes


def _form_batches(todo: list[_Item], shapes: list[_Shape], sizes: dict[_Shape, int]
                  ) -> list[tuple[_Shape, list[_Item]]]:
    """Consecutive images (name order) of one shape, at most ``sizes[shape]`` of them per batch,
    each with its shape: the same batches in every process given the same sizes."""
    batches: list[tuple[_Shape, list[_Item]]] = []
    for item, shape in zip(todo, shapes):
        if batches and shape == batches[-1][0] and len(batches[-1][1]) < sizes[shape]:
            batches[-1][1].append(item)
        else:
            batches.append((shape, [item]))
    return batches


def run_batch(
    recipe: Recipe,
    output: str | os.PathLike | None = None,
    steps: int | None = None,
    device: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run a recipe over every image of its folder / glob input (see the module docstring).

    Returns the contents of ``metrics.json`` plus ``computed`` and ``resumed`` (how many images
    this call solved and how many it found finished) and ``wall_seconds`` (this call's time).
    """
    t_start = time.perf_counter()
    dev_spec = device if device is not None else recipe.device
    target = Path(output).expanduser() if output is not None else Path(recipe.output)
    top = OutputFolder(target, RUN_FILES, overwrite=overwrite, meta=_input_meta(recipe.input_spec))
    with distributed(dev_spec) as (ranks, dev_spec), contextlib.ExitStack() as held:
        check_input_folder(recipe.input_spec, target)  # before the folder is created: no link followed
        list_inputs(recipe.input_spec, exclude=target)  # an input error first: it is what to fix first
        _hold_run(top, ranks, held)  # one run per output folder, from before any work to the end
        top.check()
        settings = run_settings(recipe, steps)
        n_steps = settings["steps"]
        names, done, todo = scan(recipe, target, n_steps, overwrite)
        prior = load_prior(recipe.prior) if todo else None
        # batches are formed once the group is joined: batch_size auto depends on each rank's
        # memory, and every rank must form the same batches (or images are skipped / duplicated)
        batches: list[list[_Item]] = []
        if todo:
            dev = resolve_device(dev_spec, torch.empty(0))
            shapes = [measurement_shapes(recipe, str(item[1]))[0] for item in todo]
            sizes = batch_sizes(recipe, todo, prior, dev, ranks.world, shapes=shapes)
            if recipe.batch_size == AUTO_BATCH:
                sizes = dict(zip(sizes, ranks.min_all(list(sizes.values()))))
                settings["batch_sizes"] = [{"shape": list(shape[1:]), "batch_size": k} for shape, k in sizes.items()]
            largest: dict[_Shape, tuple[str, int]] = {}  # x shape -> (an image of it, its largest batch)
            for shape, b in _form_batches(todo, shapes, sizes):
                batches.append(b)
                largest[shape] = (str(b[0][1]), max(largest.get(shape, ("", 0))[1], len(b)))
            refused: MemoryLimitError | None = None
            for spec, b in largest.values():
                x_shape, y_shape = measurement_shapes(recipe, spec, batch=b)
                try:
                    check_solve_memory(x_shape, y_shape, prior, recipe.resolved_method, dev, torch.float32,
                                  recipe.max_memory)
                except MemoryLimitError as err:
                    refused = err if b == 1 else MemoryLimitError(
                        f"{err}; or batch_size: auto (as many images per solve as fit)")
                    break
            # every rank learns whether any rank was refused: a rank that stopped alone would leave
            # the others waiting at the next barrier
            if ranks.min_all([0 if refused else 1]) == [0]:
                raise refused or MemoryLimitError(
                    "another process of this run does not have the memory for its batches (its own message "
                    "says how much it needs); lower batch_size or max_memory, or give it more memory")
        rows: dict[str, dict[str, Any]] = dict(done)

        def write_top() -> None:
            ordered = [rows[n] for n in names if n in rows]
            with top.transaction() as tmp:
                write_run_files(tmp, recipe, target, _summary(settings, ordered), ordered, n_steps, dev_spec)

        if ranks.rank == 0:  # the folder and its run files exist before any image is written
            top.remove_partials()
            for _, _, folder in todo:
                folder.remove_partials()
            write_top()
        ranks.barrier()

        mine = [b for k, b in enumerate(batches) if k % ranks.world == ranks.rank]
        bar = None
        if progress:
            import sys

            from tqdm.auto import tqdm

            # one bar per rank, each on its own line of a terminal (a pipe or a file has no lines to move to)
            on_terminal = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
            bar = tqdm(total=sum(len(b) for b in mine), unit="image", position=ranks.rank if on_terminal else None,
                       desc=f"rank {ranks.rank}" if ranks.world > 1 else "images")
        computed: dict[str, dict[str, Any]] = {}
        failure: Exception | None = None
        try:
            for batch in mine:
                for row_name, row in _solve_batch(recipe, batch, prior, n_steps, dev_spec, progress, is_grey_rgb):
                    computed[row_name] = rows[row_name] = row
                    if bar is not None:
                        bar.update(1)
                if ranks.rank == 0:
                    write_top()
        except Exception as err:
            if ranks.world == 1:
                raise
            # a user's mistake met by one rank only (an image that does not decode, ...) or a bug, a
            # CUDA error: this rank stops, the others finish their batches (a rank that left alone
            # would kill them at the next collective), and after the merge this rank raises its own
            # error (a non-PnPError with its traceback) and the others name it
            failure = err
        finally:
            if bar is not None:
                bar.close()
        parts = ranks.gather((computed, None if failure is None else f"{type(failure).__name__}: {failure}"))
        for part, _ in parts:
            rows.update(part)
        if ranks.rank == 0:
            write_top()
        ranks.barrier()
        if failure is not None:
            raise failure
        stopped = [(r, msg) for r, (_, msg) in enumerate(parts) if msg]
        if stopped:
            r, msg = stopped[0]
            raise PnPError(f"process {r} of this run stopped ({msg}); the images the processes finished are kept")
    ordered = [rows[n] for n in names if n in rows]
    return {**_summary(settings, ordered), "computed": len(todo), "resumed": len(done),
            "wall_seconds": round(time.perf_counter() - t_start, 3), "output": str(target)}


def _hold_run(top: OutputFolder, ranks: Ranks, held: contextlib.ExitStack) -> None:
    """Lock the run's output folder for the rest of ``held``: in one process, that process; under
    torchrun rank 0 holds the lock for its whole run and the other ranks rely on it (they write
    only their images' folders, below it). Every rank learns whether rank 0 got it, and all stop
    with its message if not (a rank that stopped alone would leave the others at a barrier)."""
    if ranks.world == 1:
        held.enter_context(top.hold(check=False))
        return
    refused = None
    if ranks.rank == 0:
        try:
            held.enter_context(top.hold(check=False))
        except OutputFolderError as err:
            refused = str(err)
    msg = ranks.gather(refused)[0]
    if msg is not None:
        raise OutputFolderError(msg)
    if ranks.rank != 0:
        top.lock = False  # rank 0's lock covers this rank: do not count it as another run


def _solve_batch(recipe: Recipe, batch: list[tuple[str, Path, Any]], prior: Any, n_steps: int,
                 device: str | None, progress: bool, is_grey: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Measure, solve and commit one batch; yield ``(name, metrics row)`` per image as it is
    committed. Images that cannot share a solve (grey vs colour, different noise levels) are
    solved in sub-batches."""
    items = []
    for name, path, folder in batch:
        m = measure(recipe, str(path), derive_seed(recipe.noise_seed, name, "noise"))
        items.append((name, path, folder, m))
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for it in items:
        m = it[3]
        # a blur to estimate is estimated for each image alone (one kernel per photo)
        alone = it[0] if isinstance(m.operator, operators.BlindBlur) else None
        groups.setdefault((tuple(m.y.shape), bool(is_grey(m.y)), m.sigma_y, alone), []).append(it)
    for group in groups.values():
        y = torch.cat([it[3].y for it in group])
        seeds = [derive_seed(recipe.seed, it[0], "solver") for it in group]
        t0 = time.perf_counter()
        x_hat, frames, _, what = restore(recipe, y, group[0][3].operator, group[0][3].sigma_y, seeds, prior=prior,
                                         steps=n_steps, device=device, progress=progress, noise=group[0][3].noise)
        seconds = (time.perf_counter() - t0) / len(group)
        for b, (name, path, folder, m) in enumerate(group):
            row: dict[str, Any] = {
                "image": name,
                "source": str(path),
                "seed": seeds[b],
                "noise_seed": derive_seed(recipe.noise_seed, name, "noise"),
                "sigma_y": round(float(m.sigma_y), 6),
                "sigma_y_estimated": m.sigma_estimated,
                "image_size": [int(x_hat.shape[-2]), int(x_hat.shape[-1])],
                "bits": m.bits,
                **what,
            }
            strip = frames.strip(b, recipe.intermediates) if frames is not None else []
            with folder.transaction() as tmp:
                write_image_files(tmp, recipe, m, x_hat[b:b + 1], strip, row)
                row["seconds"] = round(seconds, 3)
                folder.meta = {**(folder.meta or {}), "metrics": row}
            yield name, row
