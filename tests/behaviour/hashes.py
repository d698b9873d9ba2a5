"""Behaviour fingerprint of pnpdiff: the sha256 of every output file of every catalogue recipe (run
through the CLI at a small size and few steps) and of ``solve`` for every method on a fixed input.

Recorded before the front-door refactor of issue 26 (``tests/behaviour/hashes.json``) and compared
after it by ``tests/test_behaviour_hashes.py``: a refactor that changes what a run writes fails.

    python tests/behaviour/hashes.py record      # write hashes.json (only before a deliberate change)
    python tests/behaviour/hashes.py compare     # print the entries that differ

Floating-point results depend on the CPU's vector units and on the torch build, so the file records
the machine it was made on and the comparison runs only on a machine with the same fingerprint.
Everything runs on one CPU thread (see :func:`current`). Times (``seconds``), the output folder's
absolute path and the manifest (its timestamp) are normalised away; everything else is hashed byte
for byte (YAML and dry-run text with their whitespace collapsed: where YAML wraps a long line
depends on the length of the paths in it).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HASHES = Path(__file__).with_name("hashes.json")

#: catalogue recipe -> the CLI arguments that make it small (size, steps)
SMALL = ["size=32", "--steps", "3"]
TRAIN_SMALL = ["steps=2", "batch_size=4", "checkpoint_every=1", "sample_every=2", "log_every=1"]
EXTRA = {
    "train_digits.yaml": TRAIN_SMALL,
    "train_digits_classifier.yaml": [a for a in TRAIN_SMALL if not a.startswith("sample_every")],
    "sample_digits.yaml": ["n=1", "steps=3"],
    "batch.yaml": ["size=32", "--steps", "2"],
    "motion_deblur.yaml": ["size=64", "--steps", "3"],  # a 61-px kernel
    "inpaint_box.yaml": ["size=256", "--steps", "2"],  # a 128-px box
}


def machine() -> dict[str, str]:
    import numpy
    import torch

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "machine": platform.machine(), "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def _normalise(name: str, data: bytes, out: Path, cwd: Path) -> bytes:
    if name.endswith((".json", ".csv", ".yaml", ".txt")):
        text = data.decode()
        for path, tag in ((out.resolve(), "<OUT>"), (cwd.resolve(), "<CWD>"), (REPO, "<REPO>")):
            text = text.replace(str(path), tag)
        text = re.sub(r'("seconds": )[0-9.eE+-]+', r"\g<1>0", text)
        if name.endswith((".yaml", ".txt")):  # YAML wraps long lines at spaces: where depends on the path lengths
            text = " ".join(text.split())
        if name.endswith(".csv"):  # the seconds column
            lines = text.splitlines()
            if lines:
                head = next(iter(__import__("csv").reader([lines[0]])))
                if "seconds" in head:
                    import csv

                    rows = list(csv.reader(io.StringIO(text)))
                    k = rows[0].index("seconds")
                    for r in rows[1:]:
                        if len(r) > k:
                            r[k] = "0"
                    buf = io.StringIO()
                    csv.writer(buf, lineterminator="\n").writerows(rows)
                    text = buf.getvalue()
        data = text.encode()
    return data


def _tree(out: Path, cwd: Path) -> dict[str, str]:
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if not p.is_file() or p.name.startswith(".pnpdiff-") or rel.endswith(".pt") or "log" in p.name:
            continue  # the manifest / lock (timestamps, pids), checkpoints (pickled), training logs (times)
        files[rel] = hashlib.sha256(_normalise(p.name, p.read_bytes(), out, cwd)).hexdigest()
    return files


def _cli(args: list[str]) -> tuple[int, str]:
    from pnpdiff.cli import main

    buf_out, buf_err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
        try:
            rc = main(args)
        except SystemExit as e:
            rc = int(e.code or 0)
    return rc, buf_out.getvalue() + buf_err.getvalue()


def recipe_runs() -> dict[str, Any]:
    found: dict[str, Any] = {}
    paths = sorted((REPO / "recipes").glob("*.yaml")) + sorted((REPO / "recipes" / "peers").glob("*.yaml"))
    for path in paths:
        rel = path.relative_to(REPO).as_posix()
        m = re.search(r"^task:\s*(\S+)", path.read_text(), re.M)
        task = m.group(1) if m else None
        extra = EXTRA.get(path.name, SMALL)
        if path.parent.name == "peers":
            extra = ["size=32", "--steps", "3"]
        with tempfile.TemporaryDirectory() as d:
            cwd = Path(d)
            out = cwd / "out"
            old = os.getcwd()
            os.chdir(cwd)
            try:
                if task in ("train", "train-classifier"):  # no --output: the folder is the key output
                    rc, text = _cli([task, str(path), f"output={out}", "--no-progress", *extra])
                else:
                    rc, text = _cli([str(path), "--output", str(out), "--no-progress", *extra])
            finally:
                os.chdir(old)
            found[rel] = {"rc": rc, "files": _tree(out, cwd) if out.exists() else {}}
            if rc != 0:
                found[rel]["message"] = text.strip().splitlines()[-1] if text.strip() else ""
            os.chdir(cwd)
            try:  # what --dry-run prints (paths normalised)
                head = [task] if task in ("train", "train-classifier") else []
                rc, text = _cli([*head, str(path), "--dry-run", *(a for a in extra if a != "--no-progress")])
            finally:
                os.chdir(old)
            text = _normalise("dry-run.txt", text.encode(), out, cwd).decode()
            found[rel + "#dry-run"] = {"rc": rc, "text": text}
    return found


def solve_runs() -> dict[str, Any]:
    import torch

    import pnpdiff
    from pnpdiff.operators import Downsample, GaussianBlur, Identity
    from pnpdiff.solvers import SOLVERS

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    found: dict[str, Any] = {}
    for method in SOLVERS:
        for op_name, op in (("blur", GaussianBlur(1.5)), ("sr2", Downsample(2)), ("denoise", Identity())):
            y = (op(x) + 0.05 * torch.randn(op(x).shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
            key = f"solve/{method}/{op_name}"
            try:
                x_hat = pnpdiff.solve(y, op, prior="natural", method=method, steps=4, sigma_y=0.05, seed=0,
                                      progress=False)
            except Exception as e:  # noqa: BLE001 - the kind of refusal is part of the behaviour
                found[key] = {"error": type(e).__name__, "message": str(e).splitlines()[0][:300]}
                continue
            found[key] = {"sha256": hashlib.sha256(x_hat.detach().cpu().contiguous().numpy().tobytes()).hexdigest()}
    return found


def current() -> dict[str, Any]:
    """Every entry, computed on one CPU thread: a float reduction's result depends on how many
    threads share it, and the test suite runs on one thread per worker (tests/conftest.py)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {**recipe_runs(), **solve_runs()}
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str]) -> int:
    if argv[:1] == ["record"]:
        HASHES.write_text(json.dumps({"machine": machine(), "runs": current()}, indent=1, sort_keys=True) + "\n")
        print(f"wrote {HASHES}")
        return 0
    saved = json.loads(HASHES.read_text())
    now = current()
    bad = [k for k in sorted(set(saved["runs"]) | set(now)) if saved["runs"].get(k) != now.get(k)]
    for k in bad:
        print(k, "\n  was:", saved["runs"].get(k), "\n  now:", now.get(k))
    print(f"{len(bad)} of {len(now)} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main(sys.argv[1:]))
