"""Recipe files as a hostile or careless author writes them: bounds before work, scientific
notation, duplicate keys, and the range of every integer key (issue 25, items 7 and 10).

Every recipe file goes through one loader (:mod:`pnpdiff.config.files`): restoration, sample and
training recipes, peer configs and command-line overrides.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tree_utils import tree_snapshot as _tree

from pnpdiff.config.files import MAX_BYTES, MAX_DEPTH, MAX_NODES, apply_overrides, load_yaml
from pnpdiff.config.restore import RECIPE_OPERATORS, load_recipe
from pnpdiff.errors import RecipeError, UnknownNameError, UnknownRecipeNameError

ROOT = Path(__file__).resolve().parents[1]
BASE = "image: skimage:astronaut\nsize: 32\noperator: {name: GaussianBlur, sigma: 1.0}\nsteps: 2\noutput: out\n"


def _bomb(levels: int = 9) -> str:
    """A "billion laughs" document: 9 levels of 9 aliases each (9**9 strings once expanded)."""
    text = 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels):
        text += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n"
    return text


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m pnpdiff ARGS`` in ``tmp_path``; asserts the tree is untouched."""
    before = _tree(tmp_path)
    r = subprocess.run([sys.executable, "-m", "pnpdiff", *args], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert _tree(tmp_path) == before
    return r


def _one_error_line(r: subprocess.CompletedProcess, *words: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pnpdiff: error: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------------------------
# bounds before work: size, depth, aliases
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("bomb.yaml", BASE + _bomb() + "description: *l8\n", ["bomb.yaml: line ", "aliases", "small YAML file"]),
        ("deep.yaml", BASE + "description: " + "[" * 5000 + "]" * 5000 + "\n",
         ["deep.yaml: line 6", f"nested more than {MAX_DEPTH} levels", "small YAML file"]),
        ("big.yaml", BASE + "# padding\n" * (2 * MAX_BYTES // 10), ["big.yaml is 2,", "bytes", "small YAML file"]),
    ],
    ids=["billion-laughs", "5000-levels", "2-MiB"],
)
def test_cli_refuses_resource_bombs_with_one_line(tmp_path: Path, name: str, text: str, words: list[str]) -> None:
    """Old code: the alias bomb expanded in an error message (MemoryError after ~40 s), 5,000
    levels hit Python's RecursionError (a traceback), a 2 MiB file was read and run."""
    (tmp_path / name).write_text(text)
    _one_error_line(_cli(tmp_path, name, "--dry-run"), *words)


def test_loader_refuses_alias_bomb_before_expanding_it() -> None:
    with pytest.raises(RecipeError, match=f"more than {MAX_NODES:,} values once aliases"):
        load_yaml(_bomb(), "x.yaml: ")
    # a bomb nested through aliases rather than text: 60 anchors each holding the previous one
    chain = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 60))
    with pytest.raises(RecipeError, match=f"nested more than {MAX_DEPTH} levels deep once aliases"):
        load_yaml(chain)
    # ordinary anchors, aliases and merge keys still work
    d = load_yaml("base: &b {sigma: 2.0, boundary: circular}\nop:\n  <<: *b\n  sigma: 3.0\nagain: *b\n")
    assert d["op"] == {"sigma": 3.0, "boundary": "circular"} and d["again"] == {"sigma": 2.0, "boundary": "circular"}


def test_overrides_go_through_the_same_limits(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="override description: line 1: nested more than"):
        apply_overrides({"steps": 2}, ["description=" + "[" * 5000], where="r.yaml: ")


# ---------------------------------------------------------------------------------------------
# scientific notation
# ---------------------------------------------------------------------------------------------
def test_scientific_notation_is_a_float_ints_stay_ints(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(BASE + "noise: {sigma_y: 1e-2, seed: 3}\noptions: {lam: 5E-1, zeta: 1e0}\n")
    r = load_recipe(p)
    assert r.sigma_y == 0.01 and r.options["lam"] == 0.5 and r.options["zeta"] == 1.0
    assert r.steps == 2 and type(r.steps) is int and r.noise_seed == 3 and type(r.noise_seed) is int
    r = load_recipe(p, ["noise.sigma_y=5E-3", "options.lam=1.5e+0", "steps=3"])
    assert r.sigma_y == 0.005 and r.options["lam"] == 1.5 and r.steps == 3 and type(r.steps) is int
    d = load_yaml("a: 1e-2\nb: 5E-3\nc: 1.5e+3\nd: 2e3\ne: .5e-1\nf: -3e2\ng: 12\nh: 1_000\ni: 1.0e-2\nj: 1e\nk: e3\n")
    assert d == {"a": 0.01, "b": 0.005, "c": 1500.0, "d": 2000.0, "e": 0.05, "f": -300.0, "g": 12, "h": 1000,
                 "i": 0.01, "j": "1e", "k": "e3"}
    assert type(d["g"]) is int and type(d["h"]) is int
    assert yaml.safe_load("a: 1e-2")["a"] == "1e-2"  # yaml.safe_load itself is left as it is


def test_cli_accepts_sigma_y_in_scientific_notation(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(BASE + "noise: {sigma_y: 1e-2}\n")
    r = _cli(tmp_path, "r.yaml", "--dry-run", "options.lam=5e-1")
    assert r.returncode == 0, r.stderr
    assert "sigma_y: 0.01" in r.stdout and "lam: 0.5" in r.stdout


# ---------------------------------------------------------------------------------------------
# duplicate keys
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "key", "line", "first"),
    [
        ("seed: 0\nsteps: 7\n", "steps", 7, 4),
        ("noise:\n  sigma_y: 0.01\n  seed: 1\n  sigma_y: 0.02\n", "sigma_y", 9, 7),
        ("options: {lam: 0.5, zeta: 1.0, lam: 2}\n", "lam", 6, 6),
    ],
    ids=["top", "nested", "flow"],
)
def test_duplicate_keys_are_refused_naming_key_and_lines(tmp_path: Path, extra: str, key: str, line: int,
                                                        first: int) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(BASE + extra)
    with pytest.raises(RecipeError, match=f"r.yaml: line {line}: duplicate key '{key}' "
                                          f"\\(first given on line {first}\\)"):
        load_recipe(p)


def test_cli_refuses_duplicate_keys(tmp_path: Path) -> None:
    """Old code: the second ``steps`` won silently (2 -> 7)."""
    (tmp_path / "r.yaml").write_text(BASE + "steps: 7\n")
    _one_error_line(_cli(tmp_path, "r.yaml", "--dry-run"), "r.yaml: line 6: duplicate key 'steps'", "line 4")


def test_override_with_duplicate_key_is_refused() -> None:
    with pytest.raises(RecipeError, match="override options: line 1: duplicate key 'lam'"):
        apply_overrides({"steps": 2}, ["options={lam: 1, lam: 2}"], where="r.yaml: ")


# ---------------------------------------------------------------------------------------------
# integer ranges
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "key"),
    [
        (f"steps={10**9}", "steps"),
        (f"steps={2**63}", "steps"),
        (f"noise.seed={2**70}", "noise.seed"),
        (f"seed={2**63}", "seed"),
        ("size=100000", "size"),
        ("size=[64, 100000]", "size[1]"),
        (f"batch_size={10**9}", "batch_size"),
        (f"samples={10**9}", "samples"),
        (f"intermediates={10**9}", "intermediates"),
    ],
)
def test_integer_keys_have_an_upper_bound(tmp_path: Path, override: str, key: str) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(BASE)
    with pytest.raises(RecipeError, match=rf"r\.yaml: {re.escape(key)}: expected an integer >= [01].*(<=|at most) "
                                          r"[0-9]+, got [0-9]+$"):
        load_recipe(p, [override])


def test_cli_refuses_huge_steps_and_seed_before_work(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(BASE + f"noise: {{seed: {2**70}}}\n")
    _one_error_line(_cli(tmp_path, "r.yaml", "--dry-run"), "r.yaml: noise.seed: expected an integer >= 0 and <= "
                    f"{2**63 - 1}, got {2**70}")
    (tmp_path / "s.yaml").write_text(BASE.replace("steps: 2", f"steps: {2**63}"))
    _one_error_line(_cli(tmp_path, "s.yaml", "--dry-run"), "s.yaml: steps: expected an integer >= 1 and <= ")


def test_cli_sample_recipe_ranges(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text((ROOT / "recipes" / "sample_digits.yaml").read_text())
    _one_error_line(_cli(tmp_path, "s.yaml", "--dry-run", f"n={10**8}"), "s.yaml: n: expected an integer >= 1 and <= ")
    _one_error_line(_cli(tmp_path, "s.yaml", "--dry-run", f"seed={2**70}"), "s.yaml: seed: expected an integer >= 0")


def test_cli_train_recipe_ranges_and_loader(tmp_path: Path) -> None:
    text = (ROOT / "recipes" / "train_digits.yaml").read_text()
    assert "\nlr: 0.001" in text
    (tmp_path / "t.yaml").write_text(text.replace("\nlr: 0.001", "\nlr: 1e-3"))
    r = _cli(tmp_path, "train", "t.yaml", "--dry-run")
    assert r.returncode == 0 and "lr: 0.001" in r.stdout, r.stderr
    _one_error_line(_cli(tmp_path, "train", "t.yaml", "--dry-run", f"seed={2**70}"), "t.yaml: seed: expected an "
                    f"integer >= 0 and <= {2**63 - 1}")
    (tmp_path / "d.yaml").write_text(text + "lr: 0.01\n")
    _one_error_line(_cli(tmp_path, "train", "d.yaml", "--dry-run"), "d.yaml: line ", "duplicate key 'lr'")


# ---------------------------------------------------------------------------------------------
# one validator (issue 26): recipes, training and sample recipes check through pnpdiff.checks
# ---------------------------------------------------------------------------------------------
def _solve_error(**kw) -> UnknownNameError:
    import torch

    import pnpdiff

    with pytest.raises(UnknownNameError) as info:
        pnpdiff.solve(torch.full((1, 3, 8, 8), 0.5), operator=pnpdiff.Identity(), steps=1, **kw)
    return info.value


@pytest.mark.parametrize(("override", "key", "solve_kw"), [
    ("method=magic", "method", {"method": "magic"}),
    ("prior=nothing", "prior", {"prior": "nothing"}),
    ("prior={name: nothing}", "prior", {"prior": "nothing"}),
    ("operator.name=Blurr", "operator.name", None),
])
def test_an_unknown_name_in_a_recipe_is_the_unknown_name_error_of_solve(tmp_path: Path, override: str, key: str,
                                                                        solve_kw: dict | None) -> None:
    """Before: a RecipeError only, while solve raises UnknownNameError for the same name; now both
    (UnknownRecipeNameError), with the recipe's key path in front of solve's own words."""
    p = tmp_path / "r.yaml"
    p.write_text(BASE)
    with pytest.raises(UnknownNameError) as info:
        load_recipe(p, [override])
    err = info.value
    assert isinstance(err, RecipeError) and isinstance(err, UnknownRecipeNameError)
    if solve_kw is not None:
        assert str(err) == f"{p}: {key}: {_solve_error(**solve_kw)}"
    else:
        assert str(err) == f"{p}: operator.name: unknown operator 'Blurr'; known: {', '.join(RECIPE_OPERATORS)}"


def test_cli_unknown_method_in_a_recipe_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(BASE + "method: magic\n")
    line = _one_error_line(_cli(tmp_path, "r.yaml", "--dry-run"), "r.yaml: method: unknown method 'magic'; known: ")
    assert "KeyError" not in line and '"' not in line  # the message, not KeyError's quoted repr


@pytest.mark.parametrize(("text", "message"), [
    # checks.choice: any value, hashable or not (before: TypeError "unhashable type: 'list'")
    ("precision: [fp32]\n", "precision: expected one of fp32, bf16, fp16, got ['fp32']"),
    # checks.real: an int beyond the float range is not a number (before: OverflowError)
    (f"noise: {{sigma_y: {10**400}}}\n", f"noise.sigma_y: expected a number >= 0, got {str(10**400)[:77]}..."),
])
def test_values_that_crashed_a_recipe_check_are_recipe_errors(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(BASE + text)
    with pytest.raises(RecipeError) as info:
        load_recipe(p)
    assert str(info.value) == f"{p}: {message}"


def test_training_model_keys_must_be_names() -> None:
    """checks.mapping refuses keys that are not names (before: TypeError from the model's own check)."""
    from pnpdiff.config.train import TrainConfig

    with pytest.raises(RecipeError) as info:
        TrainConfig(model={1: 2}).validate("t.yaml: ")
    assert str(info.value) == "t.yaml: model: expected a mapping whose keys are names, got {1: 2}"


@pytest.mark.parametrize("kind", ["restore", "train", "sample"])
def test_a_long_value_is_shown_on_one_line_cut_to_80_characters(tmp_path: Path, kind: str) -> None:
    """The validators disagreed on showing a value: operators/_checks cut it to 80 characters,
    recipes printed the whole repr. The kit's bounded rule won: ``repr`` on one line, at most 80
    characters (77 and "...")."""
    from pnpdiff.config.sample import parse_sample_recipe
    from pnpdiff.config.train import TrainConfig

    value = list(range(60))
    shown = repr(value)[:77] + "..."
    if kind == "restore":
        p = tmp_path / "r.yaml"
        p.write_text(BASE + f"seed: {value}\n")
        with pytest.raises(RecipeError) as info:
            load_recipe(p)
        assert str(info.value) == f"{p}: seed: expected an integer >= 0 and <= {2**63 - 1}, got {shown}"
    elif kind == "train":
        with pytest.raises(RecipeError) as info:
            TrainConfig(steps=value).validate("t.yaml: ")
        assert str(info.value) == f"t.yaml: steps: expected an integer >= 1 and <= 1000000000, got {shown}"
    else:
        with pytest.raises(RecipeError) as info:
            parse_sample_recipe({"n": value}, Path("s.yaml"))
        assert str(info.value) == f"s.yaml: n: expected an integer >= 1 and <= 65536, got {shown}"
