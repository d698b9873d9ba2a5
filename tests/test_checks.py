"""pnpdiff.checks, the one validator kit: what each check accepts (normalised), what it refuses
(error class and the exact one-line message, naming the key path or argument), and the rules on
which the six validators before it disagreed (the stricter one won; each case names the old
validator that disagreed)."""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pnpdiff import checks as c
from pnpdiff.errors import OperatorError, RecipeError, UnknownNameError, ValueRangeError

BIG = 10**400  # an int beyond the float range

# (id, call, expected result, its type)
ACCEPTED = [
    ("int", lambda: c.int_(3, "n", minimum=1), 3, int),
    ("int-numpy", lambda: c.int_(np.int64(3), "n"), 3, int),
    ("int-0d-tensor", lambda: c.int_(torch.tensor(7), "n"), 7, int),
    ("int-bounds-inclusive", lambda: c.int_(5, "n", minimum=5, maximum=5), 5, int),
    ("int-text", lambda: c.int_text(" +12 ", "--steps", minimum=1), 12, int),
    ("real-int", lambda: c.real(2, "sigma"), 2.0, float),
    ("real-numpy", lambda: c.real(np.float32(0.5), "sigma"), 0.5, float),
    ("real-0d-tensor", lambda: c.real(torch.tensor(1.5), "sigma"), 1.5, float),
    ("real-inf-allowed", lambda: c.real(math.inf, "cap", finite=False), math.inf, float),
    ("real-bounds-inclusive", lambda: c.real(1.0, "p", minimum=0, maximum=1), 1.0, float),
    ("bool", lambda: c.bool_(False, "compile"), False, bool),
    ("bool-numpy", lambda: c.bool_(np.bool_(True), "compile"), True, bool),
    ("text", lambda: c.text("cpu", "device"), "cpu", str),
    ("text-empty-allowed", lambda: c.text("", "description", empty=True), "", str),
    ("choice", lambda: c.choice("bf16", "precision", ("fp32", "bf16")), "bf16", str),
    ("known", lambda: c.known("dps", "", ["diffpir", "dps"], kind="method"), "dps", str),
    ("mapping", lambda: c.mapping({"seed": 1}, "noise", allowed_keys=("sigma_y", "seed")), {"seed": 1}, dict),
    ("pair-real", lambda: c.pair([1, 2.5], "sigma", exclusive_minimum=True, minimum=0), (1.0, 2.5), tuple),
    ("pair-int-tensor", lambda: c.pair(torch.tensor([3, 4]), "size", integer=True, minimum=1), (3, 4), tuple),
    ("pair-ordered-equal", lambda: c.pair((0.5, 0.5), "range", ordered=True), (0.5, 0.5), tuple),
    ("seed-max", lambda: c.seed(2**63 - 1), 2**63 - 1, int),
    ("steps", lambda: c.steps(100_000), 100_000, int),
    ("count", lambda: c.count(0, "samples", minimum=0), 0, int),
    ("side", lambda: c.side(16_384), 16_384, int),
]


@pytest.mark.parametrize(("call", "expected", "kind"), [a[1:] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
def test_accepted_values_come_back_normalised(call, expected, kind):
    out = call()
    assert out == expected and type(out) is kind
    if kind is tuple:
        assert all(type(v) is type(expected[0]) for v in out)


R = RecipeError
# (id, call, error class, message): a RecipeError reads as a recipe key's, any other error as an argument's
REFUSED = [
    ("int-string", lambda: c.int_("5", "steps", minimum=1), ValueRangeError, "steps must be an integer >= 1, got '5'"),
    ("int-float", lambda: c.int_(2.5, "r.yaml: steps", minimum=1, maximum=9, error=R), R,
     "r.yaml: steps: expected an integer >= 1 and <= 9, got 2.5"),
    ("int-below", lambda: c.int_(0, "intermediates", minimum=1, error=R), R,
     "intermediates: expected an integer >= 1, got 0"),
    ("int-above", lambda: c.int_(10, "n", maximum=9), ValueRangeError, "n must be an integer <= 9, got 10"),
    ("int-none", lambda: c.int_(None, "n"), ValueRangeError, "n must be an integer, got None"),
    ("int-text-word", lambda: c.int_text("five", "", minimum=1, error=R), R, "expected an integer >= 1, got 'five'"),
    ("int-text-zero", lambda: c.int_text("0", "", minimum=1, error=R), R, "expected an integer >= 1, got 0"),
    ("real-string", lambda: c.real("0.025", "sigma_y", minimum=0, maximum=c.MAX_SIGMA_Y), ValueRangeError,
     "sigma_y must be a number in [0, 1000], got '0.025'"),
    ("real-nan", lambda: c.real(math.nan, "noise.sigma_y", minimum=0, error=R), R,
     "noise.sigma_y: expected a finite number >= 0, got nan"),
    ("real-nan-never", lambda: c.real(math.nan, "cap", finite=False), ValueRangeError, "cap must be a number, got nan"),
    ("real-inf", lambda: c.real(math.inf, "lam"), ValueRangeError, "lam must be a finite number, got inf"),
    ("real-huge-int", lambda: c.real(BIG, "lam", maximum=1e6), ValueRangeError, f"lam must be a number <= 1e+06, got "
     f"{str(BIG)[:77]}..."),
    ("real-positive", lambda: c.real(0, "lambda_", minimum=0, exclusive_minimum=True, error=R), R,
     "lambda_: expected a positive number, got 0"),
    ("real-negative", lambda: c.real(-1.0, "rho", minimum=0, error=OperatorError), OperatorError,
     "rho must be a number >= 0, got -1.0"),
    ("real-open-interval", lambda: c.real(1.0, "svd_threshold", minimum=0, maximum=1, exclusive_maximum=True),
     ValueRangeError, "svd_threshold must be a number in [0, 1), got 1.0"),
    ("real-unit-interval", lambda: c.real(1.5, "zeta", minimum=0, maximum=1, error=R), R,
     "zeta: expected a number in [0, 1], got 1.5"),
    ("bool-int", lambda: c.bool_(1, "compile", error=R), R, "compile: expected true or false, got 1"),
    ("bool-word", lambda: c.bool_("no", "per_channel", error=OperatorError), OperatorError,
     "per_channel must be true or false, got 'no'"),
    ("text-blank", lambda: c.text("  ", "r.yaml: prior", error=R), R,
     "r.yaml: prior: expected a non-empty string, got '  '"),
    ("text-list", lambda: c.text([1], "description", empty=True, error=R), R,
     "description: expected a string, got [1]"),
    ("choice-config", lambda: c.choice("fp64", "precision", ("fp32", "bf16", "fp16"), error=R), R,
     "precision: expected one of fp32, bf16, fp16, got 'fp64'"),
    ("choice-argument", lambda: c.choice("x", "prox", ("auto", "deepinv", "cg"), error=OperatorError), OperatorError,
     "prox must be one of 'auto', 'deepinv', 'cg', got 'x'"),
    ("known-argument", lambda: c.known("magic", "", ["diffpir", "dps"], kind="method"), UnknownNameError,
     "unknown method 'magic'; known: diffpir, dps"),
    ("known-recipe", lambda: c.known("magic", "r.yaml: method", ["dps"], kind="method", error=R), R,
     "r.yaml: method: unknown method 'magic'; known: dps"),
    ("mapping-list", lambda: c.mapping([1, 2], "options", example="{lam: 0.5}", error=R), R,
     "options: expected a mapping like {lam: 0.5}, got [1, 2]"),
    ("mapping-key-not-name", lambda: c.mapping({1: 2}, "options", error=R), R,
     "options: expected a mapping whose keys are names, got {1: 2}"),
    ("mapping-unknown-key", lambda: c.mapping({"sigma": 1}, "noise", allowed_keys=("sigma_y", "seed"), kind="noise",
                                              error=R), R, "noise.sigma: unknown noise key; known: sigma_y, seed"),
    ("mapping-unknown-top-key", lambda: c.mapping({"colour": 1}, "r.yaml: ", allowed_keys=("image",), error=R), R,
     "r.yaml: colour: unknown key; known: image"),
    ("mapping-missing", lambda: c.mapping({}, "measurement.noise", required=("sigma",), error=R), R,
     "measurement.noise.sigma: missing"),
    ("pair-entry", lambda: c.pair((1.0, -2.0), "sigma", minimum=0, exclusive_minimum=True, error=OperatorError),
     OperatorError, "sigma must be a pair of positive numbers, got (1.0, -2.0)"),
    ("pair-triple", lambda: c.pair([1, 2, 3], "margin", integer=True, minimum=0, error=R), R,
     "margin: expected a pair of integers >= 0, got [1, 2, 3]"),
    ("pair-scalar", lambda: c.pair(3, "size", integer=True), ValueRangeError, "size must be a pair of integers, got 3"),
    ("pair-order", lambda: c.pair([0.7, 0.3], "mask_prob_range", minimum=0, maximum=1, ordered=True, error=R), R,
     "mask_prob_range: expected low <= high, got [0.7, 0.3]"),
    ("seed-above", lambda: c.seed(2**63, "noise.seed", error=R), R,
     f"noise.seed: expected an integer >= 0 and <= {2**63 - 1}, got {2**63}"),
    ("steps-zero", lambda: c.steps(0), ValueRangeError, "steps must be an integer >= 1 and <= 100000, got 0"),
    ("count-above", lambda: c.count(65_537, "n"), ValueRangeError, "n must be an integer >= 1 and <= 65536, got 65537"),
    ("side-zero", lambda: c.side(0, "size[0]", error=R), R, "size[0]: expected an integer >= 1 and <= 16384, got 0"),
    ("multi-line-repr", lambda: c.real(torch.ones(2, 2), "sigma"), ValueRangeError,
     "sigma must be a number, got tensor([[1., 1.], [1., 1.]])"),
    ("long-value-one-line", lambda: c.int_("a\nb" * 40, "n"), ValueRangeError,
     "n must be an integer, got " + repr("a\nb" * 40)[:77] + "..."),
]


@pytest.mark.parametrize(("call", "cls", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_values_raise_the_callers_error_naming_the_key(call, cls, message):
    with pytest.raises(cls) as info:
        call()
    assert str(info.value) == message
    assert "\n" not in str(info.value)


# The rules on which the validators before the kit disagreed; the stricter one won.
DISAGREEMENTS = [
    # a bool is never a number: api.check_int took a 0-d bool tensor as 1
    ("bool-tensor-int", lambda: c.int_(torch.tensor(True), "n"), "n must be an integer, got tensor(True)"),
    ("bool-int", lambda: c.int_(True, "steps"), "steps must be an integer, got True"),
    ("bool-real", lambda: c.real(np.bool_(False), "lam"), f"lam must be a number, got {np.bool_(False)!r}"),
    # 2.0 is not an integer: peers._Builder.integer and operators/_checks.integer took 2.0 as 2
    ("float-int-steps", lambda: c.steps(2.0, "r.yaml: steps", error=R), "r.yaml: steps: expected an integer >= 1 "
     "and <= 100000, got 2.0"),
    ("float-int-operator", lambda: c.int_(2.0, "factor", minimum=1, error=OperatorError), "factor must be an integer "
     ">= 1, got 2.0"),
    ("float-int-pair", lambda: c.pair((3.0, 5), "size", integer=True, minimum=1),
     "size must be a pair of integers >= 1, got (3.0, 5)"),
    # a seed is 0 .. 2**63-1: operators/_checks.seed took -2**63 .. 2**64-1, peers._Builder any int >= 0
    ("seed-negative", lambda: c.seed(-1, "seed", error=OperatorError), f"seed must be an integer >= 0 and <= "
     f"{2**63 - 1}, got -1"),
    ("seed-unbounded", lambda: c.seed(2**64 - 1, "seed", error=R), f"seed: expected an integer >= 0 and <= "
     f"{2**63 - 1}, got {2**64 - 1}"),
    # NaN is never a number and inf only with finite=False: operators/_checks.real(finite=False) took inf
    # in the same call that refused NaN; here both are explicit
    ("nan", lambda: c.real(math.nan, "sigma", finite=False), "sigma must be a number, got nan"),
    # a numeric string is not a number: cli._positive_int parsed '5' (int_text is that parser, int_ never parses)
    ("numeric-string", lambda: c.int_("5", "steps"), "steps must be an integer, got '5'"),
    ("float-text", lambda: c.int_text("2.0", "", minimum=1, error=R), "expected an integer >= 1, got '2.0'"),
    # only a 0-d tensor is a scalar: api.check_int took any one-element tensor (shape (1,))
    ("one-element-tensor", lambda: c.int_(torch.tensor([3]), "steps"), "steps must be an integer, got tensor([3])"),
]


@pytest.mark.parametrize(("call", "message"), [d[1:] for d in DISAGREEMENTS], ids=[d[0] for d in DISAGREEMENTS])
def test_the_stricter_rule_wins(call, message):
    with pytest.raises((ValueRangeError, RecipeError, OperatorError)) as info:
        call()
    assert str(info.value) == message


def test_constants():
    assert (c.MAX_STEPS, c.MAX_SEED, c.MAX_SIDE, c.MAX_COUNT) == (100_000, 2**63 - 1, 16_384, 65_536)
    assert (c.MAX_SIGMA_Y, c.MAX_PARTICLES) == (1e3, 2**20)


def test_key_path():
    assert c.key_path("operator", "sigma") == "operator.sigma"
    assert c.key_path("r.yaml: ", "steps") == "r.yaml: steps"
    assert c.key_path("", "seed") == "seed"


def test_the_kit_is_layer_zero():
    """checks.py imports only the standard library and pnpdiff.errors (no torch, numpy or facade)."""
    tree = ast.parse(Path(c.__file__).read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    outside = {m for m in names if m.split(".")[0] not in sys.stdlib_module_names and m != "pnpdiff.errors"}
    assert outside == set(), outside
