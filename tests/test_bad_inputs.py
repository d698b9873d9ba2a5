"""The bad-input battery: every mistake a user can make, through the CLI and the Python API.

CLI cases assert: exit status 2, one line on stderr starting ``pnpdiff: error:`` and naming the
key or argument, nothing on stdout, no file left behind, every file that was in the output
folder byte-identical afterwards. API cases assert a :class:`pnpdiff.PnPError` subclass that is
also the matching built-in exception.
"""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import pnpdiff
from pnpdiff.cli import main
from pnpdiff.errors import (
    ImageReadError,
    InputFileError,
    MemoryLimitError,
    OperatorError,
    PnPError,
    RecipeError,
    ShapeError,
    UnknownNameError,
    ValueRangeError,
    WeightsNotFoundError,
)

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "image": "skimage:astronaut",
    "size": "32",
    "operator": "{name: GaussianBlur, sigma: 1.0}",
    "noise": "{sigma_y: 0.02, seed: 0}",
    "steps": "2",
    "seed": "0",
    "output": "out",
}


def _text(**changes: str | None) -> str:
    d = {**BASE, **changes}
    return "".join(f"{k}: {v}\n" for k, v in d.items() if v is not None)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _setup_files(tmp: Path) -> None:
    """Bad files a recipe can point at, and an output folder that belongs to the user."""
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "text.png").write_text("this is not an image\n")
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(tmp / "ok.png")
    data = (tmp / "ok.png").read_bytes()
    (tmp / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp / "afolder").mkdir()
    (tmp / "afile.txt").write_text("a file")
    (tmp / "proj").mkdir()
    (tmp / "proj" / "metrics.json").write_text("{}")
    (tmp / "proj" / "paper.tex").write_text("\\documentclass{article}")
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("precious")


# (id, recipe text, extra CLI args, words the one-line message must contain)
CLI_CASES: list[tuple[str, str, list[str], list[str]]] = [
    ("unknown-key", _text(colour="red"), [], ["colour", "unknown key"]),
    ("unknown-operator", _text(operator="{name: Blurr}"), [], ["operator.name", "unknown operator"]),
    ("operator-no-name", _text(operator="{sigma: 2}"), [], ["operator.name"]),
    ("operator-unknown-param", _text(operator="{name: GaussianBlur, sigma: 1, radius: 3}"), [], ["operator.radius"]),
    ("operator-missing-param", _text(operator="{name: GaussianBlur}"), [], ["operator.sigma", "missing"]),
    ("operator-sigma-three", _text(operator="{name: GaussianBlur, sigma: three}"), [], ["operator.sigma", "'three'"]),
    ("operator-sigma-negative", _text(operator="{name: GaussianBlur, sigma: -1}"), [], ["operator.sigma"]),
    ("downsample-factor-float", _text(operator="{name: Downsample, factor: 2.5}"), [], ["operator.factor", "2.5"]),
    ("downsample-filter", _text(operator="{name: Downsample, factor: 2, filter: foo}"), [], ["operator.filter"]),
    ("composition-not-buildable", _text(operator="{name: Composition}"), [], ["operator.name", "unknown operator"]),
    ("inpaint-no-mask", _text(operator="{name: Inpaint}"), [], ["operator.mask"]),
    ("mask-kind", _text(operator="{name: Inpaint, mask: {kind: stars}}"), [], ["operator.mask.kind"]),
    ("mask-p-missing", _text(operator="{name: Inpaint, mask: {kind: random, p_missing: 2}}"), [],
     ["operator.mask.p_missing"]),
    ("mask-missing-file", _text(operator="{name: Inpaint, mask: nomask.png}"), [], ["nomask.png"]),
    ("skimage-unknown", _text(image="skimage:nothing"), [], ["scikit-image has no test image"]),
    ("image-missing", _text(image="missing.png"), [], ["missing.png", "not found"]),
    ("image-folder", _text(image="afolder"), [], ["afolder", "folder"]),
    ("image-empty", _text(image="empty.png"), [], ["empty.png"]),
    ("image-text", _text(image="text.png"), [], ["text.png"]),
    ("image-truncated", _text(image="truncated.png"), [], ["truncated.png"]),
    ("observed-missing", _text(image=None, observed="nothing.png"), [], ["nothing.png"]),
    ("image-and-observed", _text(observed="ok.png"), [], ["exactly one"]),
    ("neither-image-nor-observed", _text(image=None), [], ["exactly one"]),
    ("no-operator", _text(operator=None), [], ["operator", "missing"]),
    ("noise-unknown-key", _text(noise="{sigma: 0.02}"), [], ["noise.sigma", "unknown noise key"]),
    ("noise-not-mapping", _text(noise="0.02"), [], ["noise", "mapping"]),
    ("noise-seed-abc", _text(noise="{sigma_y: 0.02, seed: abc}"), [], ["noise.seed", "'abc'"]),
    ("sigma-y-string", _text(noise="{sigma_y: '0.025'}"), [], ["noise.sigma_y", "'0.025'"]),
    ("sigma-y-negative", _text(noise="{sigma_y: -0.1}"), [], ["noise.sigma_y"]),
    ("sigma-y-nan", _text(noise="{sigma_y: .nan}"), [], ["noise.sigma_y", "nan"]),
    ("sigma-y-inf", _text(noise="{sigma_y: .inf}"), [], ["noise.sigma_y", "inf"]),
    ("seed-abc", _text(seed="abc"), [], ["seed", "'abc'"]),
    ("seed-float", _text(seed="1.5"), [], ["seed", "1.5"]),
    ("seed-negative", _text(seed="-3"), [], ["seed"]),
    ("steps-float", _text(steps="2.7"), [], ["steps", "2.7"]),
    ("steps-string", _text(steps="'5'"), [], ["steps", "'5'"]),
    ("steps-zero", _text(steps="0"), [], ["steps"]),
    ("size-zero", _text(size="0"), [], ["size"]),
    ("size-string", _text(size="big"), [], ["size", "'big'"]),
    ("size-triple", _text(size="[32, 32, 3]"), [], ["size"]),
    ("resize-not-bool", _text(resize="maybe"), [], ["resize"]),
    ("options-unknown", _text(options="{zeta: 0.5, lamb: 2}"), [], ["options.lamb", "no option 'lamb'"]),
    ("options-lam-abc", _text(options="{lam: abc}"), [], ["options.lam", "'abc'"]),
    ("options-lam-nan", _text(options="{lam: .nan}"), [], ["options.lam"]),
    ("options-not-mapping", _text(options="[1, 2]"), [], ["options", "mapping"]),
    ("options-schedule-unknown", _text(options="{schedule: 7}"), [], ["options.schedule"]),
    # options whose default is None take their kind from the annotation (before: accepted, truthy)
    ("options-optional-bool", _text(method="smc", options="{twisted_proposal: maybe}"), [],
     ["options.twisted_proposal", "true or false"]),
    ("options-optional-int", _text(method="smc", options="{probes: abc}"), [], ["options.probes", "'abc'"]),
    ("method-unknown", _text(method="magic"), [], ["method", "unknown method 'magic'"]),
    ("prior-unknown", _text(prior="nothing"), [], ["prior", "unknown prior 'nothing'"]),
    ("prior-mapping-no-name", _text(prior="{path: x.pt}"), [], ["prior.name"]),
    ("prior-ffhq-offline", _text(prior="ffhq"), [], ["ffhq_10m.pt"]),
    ("device-unknown", _text(device="tpu9"), [], ["device", "tpu9"]),
    ("description-not-text", _text(description="[1, 2]"), [], ["description"]),
    ("max-memory-abc", _text(max_memory="abc"), [], ["max_memory", "abc"]),
    ("max-memory-too-small", _text(max_memory="1K"), [], ["memory"]),
    ("size-100000", _text(size="100000"), [], ["100000", "size"]),
    ("output-proc", _text(output="/proc/pnpdiff-x"), [], ["/proc/pnpdiff-x"]),
    ("output-under-a-file", _text(output="afile.txt/sub"), [], ["afile.txt"]),
    ("output-is-a-file", _text(output="afile.txt"), [], ["afile.txt", "is a file"]),
    ("output-foreign-folder", _text(output="mine"), [], ["mine", "--overwrite"]),
    ("output-foreign-metrics", _text(output="proj"), [], ["proj", "metrics.json", "never replaces"]),
    ("output-foreign-metrics-overwrite", _text(output="proj"), ["--overwrite"], ["metrics.json", "never"]),
    ("cli-steps-abc", _text(), ["--steps", "abc"], ["--steps", "'abc'"]),
    ("cli-steps-zero", _text(), ["--steps", "0"], ["--steps"]),
    ("cli-unknown-flag", _text(), ["--colour", "red"], ["--colour"]),
    ("recipe-empty", "", [], ["empty"]),
    ("recipe-list", "- a\n- b\n", [], ["mapping"]),
    ("recipe-bad-yaml", "image: [unclosed\n", [], ["not valid YAML"]),
]


@pytest.mark.parametrize(("text", "args", "needles"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(tmp_path: Path, monkeypatch, capsys, text: str, args: list[str], needles: list[str]) -> None:
    _setup_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PNPDIFF_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PNPDIFF_DOWNLOAD", raising=False)
    monkeypatch.delenv("PNPDIFF_MAX_MEMORY", raising=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    before = _files(tmp_path)
    entries = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) if args[:1] in (["--colour"], ["--steps"]) else _no_raise() as info:
        rc = main([str(recipe), "--no-progress", *args])
    if info is not None:
        rc = info.value.code
    cap = capsys.readouterr()
    assert rc == 2, cap.err
    assert cap.err.count("\n") == 1, cap.err
    assert cap.err.startswith(("pnpdiff: error:", "pnpdiff ", "python -m pnpdiff")), cap.err
    assert "Traceback" not in cap.err
    for needle in needles:
        assert needle in cap.err, (needle, cap.err)
    assert cap.out == ""
    assert _files(tmp_path) == before, "a file was written, changed or removed"
    assert sorted(p.name for p in tmp_path.iterdir()) == entries, "a folder was left behind"
    assert not [p for p in tmp_path.rglob(".pnpdiff-partial-*")]


class _no_raise:  # noqa: N801 - used like pytest.raises
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_cli_recipe_file_errors(tmp_path: Path, capsys) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "dir.yaml").mkdir()
    for arg, needle in ((tmp_path / "missing.yaml", "not found"), (tmp_path / "dir.yaml", "folder"),
                        (tmp_path / "bin.yaml", "UTF-8")):
        assert main([str(arg)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err


def test_module_entry_point_one_line_no_traceback(tmp_path: Path) -> None:
    """Through ``python -m pnpdiff`` as a user runs it: a bad value, exit 2, one line."""
    r = tmp_path / "r.yaml"
    r.write_text(_text(operator="{name: GaussianBlur, sigma: three}"))
    p = subprocess.run([sys.executable, "-m", "pnpdiff", str(r)], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "operator.sigma" in p.stderr, p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.yaml"]


def test_ctrl_c_exits_130_with_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    r = tmp_path / "r.yaml"
    r.write_text(_text(size="64", steps="400"))
    p = subprocess.Popen([sys.executable, "-m", "pnpdiff", str(r)], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    # wait until the solve is running (its progress bar appears on stderr), then press Ctrl-C
    buf, t0 = b"", time.monotonic()
    while b"%|" not in buf and time.monotonic() - t0 < 120:
        ready, _, _ = select.select([p.stderr], [], [], 0.5)
        if ready:
            chunk = os.read(p.stderr.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
    assert b"%|" in buf, buf
    p.send_signal(signal.SIGINT)
    _, rest = p.communicate(timeout=60)
    seen, err = buf.decode(), rest.decode()
    msg = "pnpdiff: interrupted; no partial output was left behind"
    assert p.returncode == 130, err
    assert "Traceback" not in seen + err and "KeyboardInterrupt" not in seen + err
    # the one line of the message, after whatever the progress bar had drawn
    assert (seen + err).count("pnpdiff:") == 1 and (seen + err).rstrip().endswith(msg), seen + err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.yaml"]


# ------------------------------------------------------------------------------------- API
def _y(size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand((1, 3, size, size), generator=g)


def _api_cases(tmp: Path) -> list[tuple[str, object, type[BaseException], tuple[type[BaseException], ...], str]]:
    _setup_files(tmp)
    blur = pnpdiff.GaussianBlur(1.0)
    y = _y()
    kw = {"steps": 2, "sigma_y": 0.02, "progress": False}

    def solve(**over):  # noqa: ANN003
        args = {"y": y, "operator": blur, **kw, **over}
        return lambda: pnpdiff.solve(**args)

    return [
        ("steps-float", solve(steps=2.7), ValueRangeError, (ValueError,), "steps"),
        ("steps-string", solve(steps="5"), ValueRangeError, (ValueError,), "steps"),
        ("steps-zero", solve(steps=0), ValueRangeError, (ValueError,), "steps"),
        ("steps-bool", solve(steps=True), ValueRangeError, (ValueError,), "steps"),
        ("seed-float", solve(seed=1.5), ValueRangeError, (ValueError,), "seed"),
        ("seed-string", solve(seed="abc"), ValueRangeError, (ValueError,), "seed"),
        ("sigma-y-string", solve(sigma_y="0.025"), ValueRangeError, (ValueError,), "sigma_y must be a number"),
        ("sigma-y-nan", solve(sigma_y=math.nan), ValueRangeError, (ValueError,), "sigma_y"),
        ("sigma-y-inf", solve(sigma_y=math.inf), ValueRangeError, (ValueError,), "sigma_y"),
        ("sigma-y-negative", solve(sigma_y=-0.1), ValueRangeError, (ValueError,), "sigma_y"),
        ("progress-string", solve(progress="yes"), ValueRangeError, (ValueError,), "progress"),
        ("lam-string", solve(lam="abc"), ValueRangeError, (ValueError,), "lam"),
        ("lam-nan", solve(lam=math.nan), ValueRangeError, (ValueError,), "lam"),
        ("unknown-option", solve(lamb=2), UnknownNameError, (KeyError,), "lamb"),
        ("optional-bool-option", solve(method="smc", twisting="yes"), ValueRangeError, (ValueError,), "twisting"),
        ("optional-int-option", solve(method="smc", probes=2.5), ValueRangeError, (ValueError,), "probes"),
        ("schedule-unknown", solve(schedule="nope"), UnknownNameError, (KeyError,), "schedule"),
        ("schedule-increasing", solve(schedule=torch.tensor([0.1, 0.2])), ValueRangeError, (ValueError,), "schedule"),
        ("method-unknown", solve(method="magic"), UnknownNameError, (KeyError,), "magic"),
        ("method-not-string", solve(method=3), UnknownNameError, (KeyError,), "method"),
        ("prior-unknown", solve(prior="nothing"), UnknownNameError, (KeyError,), "nothing"),
        ("prior-not-a-prior", solve(prior=123), UnknownNameError, (KeyError,), "prior"),
        ("prior-function-one-argument", solve(prior=lambda x: x), UnknownNameError, (KeyError,), "f(x, sigma)"),
        ("prior-function-three-arguments", solve(prior=lambda x, s, t: x), UnknownNameError, (KeyError,),
         "cannot take those two arguments"),
        ("prior-ffhq-offline", solve(prior="ffhq"), WeightsNotFoundError, (FileNotFoundError,), "ffhq_10m.pt"),
        ("device-unknown", solve(device="tpu9"), PnPError, (), "tpu9"),
        ("device-cuda-missing", solve(device="cuda"), PnPError, (), "cuda"),
        ("y-empty", solve(y=torch.zeros(1, 3, 0, 0)), ShapeError, (ValueError,), "empty"),
        ("y-5d", solve(y=torch.zeros(1, 1, 3, 8, 8)), ShapeError, (ValueError,), "(B, C, H, W)"),
        ("y-nan", solve(y=torch.full((1, 3, 8, 8), math.nan)), ValueRangeError, (ValueError,), "NaN"),
        ("y-255", solve(y=_y() * 255), ValueRangeError, (ValueError,), "255"),
        ("y-int-tensor", solve(y=torch.zeros(1, 3, 8, 8, dtype=torch.int64)), ValueRangeError, (ValueError,),
         "floating point"),
        ("y-int32-array", solve(y=np.zeros((8, 8, 3), np.int32)), ValueRangeError, (ValueError,), "int32"),
        ("y-list", solve(y=[[0.1, 0.2]]), ShapeError, (ValueError,), "list"),
        ("y-missing-path", solve(y=str(tmp / "missing.png")), InputFileError, (FileNotFoundError,), "missing.png"),
        ("y-folder", solve(y=str(tmp / "afolder")), InputFileError, (FileNotFoundError,), "afolder"),
        ("y-empty-file", solve(y=str(tmp / "empty.png")), ImageReadError, (OSError,), "empty.png"),
        ("y-text-file", solve(y=tmp / "text.png"), ImageReadError, (OSError,), "text.png"),
        ("y-truncated-file", solve(y=tmp / "truncated.png"), ImageReadError, (OSError,), "truncated.png"),
        ("x-init-misfit", solve(x_init=torch.zeros(1, 3, 8, 8)), ShapeError, (ValueError,), "x_init"),
        ("operator-none", solve(operator=None), OperatorError, (ValueError,), "operator"),
        ("operator-string", solve(operator="blur"), OperatorError, (ValueError,), "operator"),
        ("operator-misfit", solve(operator=pnpdiff.Inpaint(torch.ones(1, 1, 8, 8))), PnPError, (ValueError,), "8"),
        ("max-memory-tiny", solve(max_memory="1K"), MemoryLimitError, (MemoryError,), "memory"),
        ("max-memory-abc", solve(max_memory="lots"), ValueRangeError, (ValueError,), "lots"),
        ("gaussianblur-three", lambda: pnpdiff.GaussianBlur("three"), OperatorError, (ValueError,), "'three'"),
        ("downsample-float", lambda: pnpdiff.Downsample(2.5), OperatorError, (ValueError,), "2.5"),
        ("random-mask-p", lambda: pnpdiff.random_mask((3, 8, 8), p_missing=1.5), OperatorError, (ValueError,),
         "p_missing"),
        ("load-prior-unknown", lambda: pnpdiff.load_prior("nothing"), UnknownNameError, (KeyError,), "nothing"),
        ("load-recipe-missing", lambda: __import__("pnpdiff.config.restore").config.restore.load_recipe(
            tmp / "no.yaml"),
         InputFileError, (FileNotFoundError,), "no.yaml"),
        ("parse-recipe-bad", lambda: __import__("pnpdiff.config.restore").config.restore.parse_recipe({"image": 3}),
         RecipeError, (ValueError,), "image"),
    ]


API_IDS = [c[0] for c in _api_cases(Path(__import__("tempfile").mkdtemp()))]


@pytest.mark.parametrize("case_id", API_IDS)
def test_api_bad_input(tmp_path: Path, monkeypatch, case_id: str) -> None:
    monkeypatch.setenv("PNPDIFF_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PNPDIFF_DOWNLOAD", raising=False)
    monkeypatch.delenv("PNPDIFF_MAX_MEMORY", raising=False)
    if case_id == "device-cuda-missing" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    cases = {c[0]: c[1:] for c in _api_cases(tmp_path)}
    fn, cls, builtins, needle = cases[case_id]
    before = _files(tmp_path)
    with pytest.raises(cls) as info:
        fn()
    assert isinstance(info.value, PnPError)
    for b in builtins:
        assert isinstance(info.value, b), (type(info.value).__mro__, b)
    assert needle in str(info.value), str(info.value)
    assert _files(tmp_path) == before


def test_sigma_y_above_the_priors_range_warns() -> None:
    op = pnpdiff.operators.Identity()
    with pytest.warns(pnpdiff.PnPWarning, match="75/255"):
        pnpdiff.solve(_y(), op, sigma_y=0.5, progress=False)


def test_the_two_data_loss_reproductions(tmp_path: Path, monkeypatch, capsys) -> None:
    """Issue 9's reproductions: a user's notes.txt in a pnpdiff output folder, and a project
    folder that happens to hold a metrics.json, both survive byte for byte."""
    monkeypatch.chdir(tmp_path)
    r = tmp_path / "r.yaml"
    r.write_text("image: skimage:astronaut\nsize: 32\noperator: {name: GaussianBlur, sigma: 2.0}\nsteps: 2\n"
                 "output: out\n")
    assert main([str(r), "--no-progress"]) == 0
    (tmp_path / "out" / "notes.txt").write_text("n\n")
    assert main([str(r), "--no-progress"]) == 0
    assert (tmp_path / "out" / "notes.txt").read_text() == "n\n"
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "metrics.json").write_text("{}\n")
    (proj / "paper.tex").write_text("x\n")
    capsys.readouterr()
    assert main([str(r), "--output", "proj", "--no-progress"]) == 2
    assert "proj" in capsys.readouterr().err
    assert (proj / "paper.tex").read_text() == "x\n" and (proj / "metrics.json").read_text() == "{}\n"
    assert sorted(p.name for p in proj.iterdir()) == ["metrics.json", "paper.tex"]
