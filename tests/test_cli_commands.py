"""The command line's commands (issue 26): ``restore``, ``sample``, ``train``, ``train-classifier``
and ``list``, each the same run as the form without a command (``pnpdiff RECIPE``, dispatched by
the recipe's ``task``), one parser whose help lists them, and ``--output`` / ``--steps`` /
``--device`` applied once, the same way, for ``--dry-run`` and the run.

Which tests fail on the CLI before the commands (pnpdiff/cli.py of commit 1ca337c), and why:

- ``restore`` / ``sample`` / ``list`` were read as the path of a recipe ("recipe file not found"):
  every test running them fails there (the ``train`` / ``train-classifier`` cases existed and pass);
- its ``--help`` listed no command;
- ``--dry-run --output ~/X`` printed ``<cwd>/~/X`` while the run wrote to ``$HOME/X`` (the flags
  were set on the recipe for a dry run, passed to the runner for a real one);
- ``sample`` took no ``--steps``; ``--steps 100001`` passed the parser (a dry run printed it).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pnpdiff.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
TRAIN_TINY = ["steps=1", "model.base=8", "model.emb=16", "batch_size=8", "log_every=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
for _name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "PNPDIFF_MAX_MEMORY"):
    ENV.pop(_name, None)

RESTORE = """image: skimage:astronaut
size: 16
operator: {name: GaussianBlur, sigma: 1.0}
noise: {sigma_y: 0.02, seed: 0}
steps: 4
output: out
"""


@pytest.fixture(autouse=True)
def _named_pnpdiff(monkeypatch) -> None:
    """The program names itself by ``sys.argv[0]`` (the console script: ``pnpdiff``); the same
    under pytest, its workers and ``python -m pytest``."""
    monkeypatch.setattr(sys, "argv", ["pnpdiff"])


def _restore_recipe(folder: Path) -> Path:
    p = folder / "r.yaml"
    p.write_text(RESTORE)
    return p


#: command -> (recipe, the arguments of a tiny run into the folder ``{out}``)
def _runs(tmp: Path) -> dict[str, tuple[Path, list[str]]]:
    return {
        "restore": (_restore_recipe(tmp), ["--output", "{out}", "--steps", "1"]),
        "sample": (RECIPES / "sample_digits.yaml", ["--output", "{out}", "--steps", "1", "n=1"]),
        "train": (RECIPES / "train_digits.yaml", ["output={out}", "sample_every=0", *TRAIN_TINY]),
        "train-classifier": (RECIPES / "train_digits_classifier.yaml", ["output={out}", *TRAIN_TINY]),
    }


def _timeless(name: str, data: bytes) -> bytes:
    """A run file without its times: the ``seconds`` of metrics.json and of metrics.csv's rows."""
    if name.endswith(".json"):
        return re.sub(rb'("(?:wall_)?seconds": )[0-9.eE+-]+', rb"\g<1>0", data)
    if name.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(data.decode())))
        k = rows[0].index("seconds") if rows and "seconds" in rows[0] else None
        return "\n".join(",".join(v for i, v in enumerate(r) if i != k) for r in rows).encode()
    return data


def _hashes(out: Path) -> dict[str, str]:
    """sha256 of every file a run wrote, without its times (see :func:`_timeless`), but the
    manifest (its timestamp), training logs and the training checkpoint (it holds the log: times)."""
    return {p.name: hashlib.sha256(_timeless(p.name, p.read_bytes())).hexdigest() for p in sorted(out.iterdir())
            if p.is_file() and not p.name.startswith(".pnpdiff-") and "log" not in p.name
            and p.name != "checkpoint.pt"}


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        rc = main(args)
    except SystemExit as e:  # a usage error (argparse) or --help
        rc = int(e.code or 0)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize("command", ["restore", "sample", "train", "train-classifier"])
def test_each_command_writes_the_bytes_of_the_form_without_a_command(tmp_path: Path, monkeypatch, capsys,
                                                                     command: str) -> None:
    """``pnpdiff COMMAND RECIPE`` and ``pnpdiff RECIPE`` are one run: the same files, byte for
    byte (run one after the other into the same folder, so that recorded paths are the same).
    New for restore and sample; train and train-classifier existed and pass on the old CLI too."""
    monkeypatch.chdir(tmp_path)
    recipe, extra = _runs(tmp_path)[command]
    out = tmp_path / "out"
    args = [a.format(out=out) for a in extra] + ["--no-progress"]
    overwrite = ["--overwrite"] if command.startswith("train") else []  # a training run refuses to replace its files
    rc, _, err = _main([str(recipe), *args], capsys)
    assert rc == 0, err
    bare = _hashes(out)
    assert bare and ("restored.png" in bare or "samples.png" in bare or any(n.endswith(".pt") for n in bare))
    rc, _, err = _main([command, str(recipe), *args, *overwrite], capsys)
    assert rc == 0, err
    assert _hashes(out) == bare


@pytest.mark.parametrize("command, recipe, right", [
    ("restore", "train_digits.yaml", "train"),
    ("restore", "train_digits_classifier.yaml", "train-classifier"),
    ("restore", "sample_digits.yaml", ""),  # the form without a command runs it
    ("sample", "deblur.yaml", "restore"),
    ("sample", "train_digits.yaml", "train"),
])
def test_a_command_that_is_not_the_recipes_task_is_refused_naming_the_right_one(
        tmp_path: Path, monkeypatch, capsys, command: str, recipe: str, right: str) -> None:
    """One line, exit 2, nothing written, and the line says which command runs the file."""
    monkeypatch.chdir(tmp_path)
    path = RECIPES / recipe
    rc, out, err = _main([command, str(path), "--no-progress"], capsys)
    assert rc == 2 and out == "" and err.count("\n") == 1 and err.startswith("pnpdiff: error: "), err
    # (the recipe loader says "python -m pnpdiff", whatever the program's name; both run it)
    command = re.escape(right + " " if right else "")
    assert re.search(f"run it with (python -m )?pnpdiff {command}{re.escape(str(path))}$", err.strip()), err
    assert list(tmp_path.iterdir()) == []


def test_train_takes_no_run_flag_it_would_ignore(tmp_path: Path, capsys) -> None:
    """train has no --output or --steps (output= and steps= are its keys): refused, with or
    without the command, naming the train command's help."""
    for args in (["train", str(RECIPES / "train_digits.yaml")], [str(RECIPES / "train_digits.yaml")]):
        for flag in (["--output", str(tmp_path / "o")], ["--steps", "2"]):
            rc, _, err = _main([*args, *flag, "--dry-run"], capsys)
            assert rc == 2 and err.count("\n") == 1, err
            assert err.startswith("pnpdiff train: error: unrecognized arguments: " + flag[0]), err
    assert list(tmp_path.iterdir()) == []


def test_the_help_lists_the_commands_and_each_command_exactly_its_options(capsys) -> None:
    """Fails on the old CLI: no command was listed, and ``restore --help`` / ``sample --help``
    printed the recipe parser's help (``--list``, ``--version`` among its options)."""
    rc, out, _ = _main(["--help"], capsys)
    assert rc == 0 and out.startswith("usage: ")
    for name in ("restore", "sample", "train", "train-classifier", "list"):
        assert re.search(rf"^\s+{re.escape(name)}(\s|$)", out, re.M), (name, out)
    run = {"--output", "--steps", "--device", "--overwrite", "--dry-run", "--no-progress", "--help"}
    expected = {"restore": run, "sample": run, "list": {"--help"},
                "train": run - {"--output", "--steps"}, "train-classifier": run - {"--output", "--steps"}}
    for name, options in expected.items():
        rc, out, _ = _main([name, "--help"], capsys)
        assert rc == 0 and out.startswith(f"usage: pnpdiff {name} "), out
        assert set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", out)) == options, (name, out)


def test_list_is_the_list_flag(capsys) -> None:
    rc, listed, _ = _main(["--list"], capsys)
    assert rc == 0 and "methods" in listed
    rc, out, err = _main(["list"], capsys)
    assert rc == 0 and out == listed, err


def test_dry_run_prints_what_the_run_records(tmp_path: Path, monkeypatch, capsys) -> None:
    """The unification proof: ``--dry-run --steps 3 --output ~/X --device cpu`` prints the steps,
    the folder and the device that the run then records in ``X/recipe.yaml`` (sample: in
    ``samples.json`` and the folder it writes). Before, a dry run set the flags on the recipe and
    a run passed them to the runner: ``~`` was expanded by the run only (the dry run printed
    ``<cwd>/~/X``), and sample took no ``--steps``."""
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path / "work")
    recipe = _restore_recipe(tmp_path)
    flags = ["--steps", "3", "--output", "~/restored", "--device", "cpu"]
    rc, out, err = _main([str(recipe), *flags, "--dry-run"], capsys)
    assert rc == 0, err
    planned = yaml.safe_load(out)
    rc, _, err = _main([str(recipe), *flags, "--no-progress"], capsys)
    assert rc == 0, err
    recorded = yaml.safe_load((home / "restored" / "recipe.yaml").read_text())
    assert planned["output"] == recorded["output"] == str(home / "restored")
    assert planned["steps"] == recorded["steps"] == 3
    assert planned["device"] == recorded["device"] == "cpu"
    assert planned == recorded
    assert json.loads((home / "restored" / "metrics.json").read_text())["steps"] == 3

    sample = ["sample", str(RECIPES / "sample_digits.yaml"), "n=1", "--steps", "2", "--output", "~/samples"]
    rc, out, err = _main([*sample, "--dry-run"], capsys)
    assert rc == 0, err
    planned = yaml.safe_load(out)
    assert planned["output"] == str(home / "samples") and planned["steps"] == 2
    rc, out, err = _main([*sample, "--no-progress"], capsys)
    assert rc == 0, err
    written = json.loads((home / "samples" / "samples.json").read_text())
    assert written["steps"] == 2
    assert {k: v for k, v in planned.items() if k in written and k != "label"} == \
        {k: v for k, v in written.items() if k != "label"}  # label: each is listed per sample there
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize("value, words", [("0", "got 0"), ("abc", "got 'abc'"), ("100001", "got 100001"),
                                          ("2.0", "got '2.0'")])
def test_steps_is_checked_like_the_recipe_key(tmp_path: Path, capsys, value: str, words: str) -> None:
    """``--steps`` by the recipe key's rule (pnpdiff.checks: an integer in 1 .. 100000), for every
    command that takes it; before, 100001 passed (a dry run printed it) and the words differed."""
    recipe = _restore_recipe(tmp_path)
    for args in ([str(recipe)], ["restore", str(recipe)], ["sample", str(RECIPES / "sample_digits.yaml")]):
        rc, out, err = _main([*args, "--steps", value, "--dry-run"], capsys)
        assert rc == 2 and out == "" and err.count("\n") == 1, err
        assert "argument --steps: expected an integer >= 1 and <= 100000, " + words in err, err


def test_each_command_runs_as_a_process(tmp_path: Path) -> None:
    """``python -m pnpdiff COMMAND ...``, as a user types it: exit 0, its files, its summary line."""
    runs = _runs(tmp_path)
    for command, (recipe, extra) in runs.items():
        out = tmp_path / command
        args = [a.format(out=out) for a in extra]
        r = subprocess.run([sys.executable, "-m", "pnpdiff", command, str(recipe), *args, "--no-progress"],
                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (command, r.stderr)
        assert r.stdout.count("\n") == 1 and str(out) in r.stdout, (command, r.stdout)
        names = {p.name for p in out.iterdir()}
        assert {"restore": "restored.png", "sample": "samples.png", "train": "prior.pt",
                "train-classifier": "classifier.pt"}[command] in names, names
    r = subprocess.run([sys.executable, "-m", "pnpdiff", "list"], cwd=tmp_path, env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "methods" in r.stdout, r.stderr
