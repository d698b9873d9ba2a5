#!/usr/bin/env bash
# Mutation testing of pnpdiff with cosmic-ray, in a throw-away copy of the repository.
# Not run in CI.  See tests/mutation/README.md.
#
# usage: tests/mutation/run_mutation.sh [PATH ...]      (default: pnpdiff/solvers)
#   env: SAMPLE=N     mutants sampled at random per module (default 0 = all)
#        SEED=S       sampling seed (default 0)
#        TIMEOUT=T    seconds per mutant test run (default 240)
#        WORKDIR=DIR  copy location (default /tmp/pnpdiff-mutation; deleted and re-created)
#        TESTS="..."  test files for each mutant (default: the fast solver/schedule/adapter tests)
#        DESELECT=... pytest -k expression (default drops the slowest tests; empty keeps all)
#        PYTHON=...   interpreter whose site-packages hold torch, pytest and cosmic-ray
#                     (default: .venv/bin/python of the repository, else python3)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORKDIR=${WORKDIR:-/tmp/pnpdiff-mutation}
SAMPLE=${SAMPLE:-0}
SEED=${SEED:-0}
TIMEOUT=${TIMEOUT:-240}
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
TESTS=${TESTS:-"tests/test_official_loops.py tests/test_official_loops_more.py tests/test_posterior_covariance.py tests/test_solvers_spectral.py tests/test_solvers_guided.py tests/test_samplers.py tests/test_samplers_moments.py tests/test_schedules.py tests/test_schedules_formulas.py tests/test_mutation_kills.py tests/test_denoise.py tests/test_operators_nonlinear.py tests/test_solve.py tests/test_priors_adapters.py tests/test_priors_adm.py"}
DESELECT=${DESELECT-"not mixture_posterior_d80 and not state_dict_loads_as_ffhq and not state_dict_keys_match_deepinv"}
[ $# -gt 0 ] || set -- pnpdiff/solvers

# 1. copy the tracked files (the working tree, uncommitted edits included) -- never mutate $REPO
rm -rf "$WORKDIR" && mkdir -p "$WORKDIR"
(cd "$REPO" && git ls-files -z | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' | tar --null -cT - | tar -x -C "$WORKDIR")

# 2. a venv that sees the packages of $PYTHON but NOT its .pth files: an editable install of
#    $REPO (setuptools' __editable__ finder) would otherwise shadow pnpdiff.operators of the copy
SP=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$PYTHON" -m venv --without-pip "$WORKDIR/.venv-mut"
PY=$WORKDIR/.venv-mut/bin/python
echo "$SP" > "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_base_site.pth"
cd "$WORKDIR"
export PYTHONPATH=$WORKDIR
"$PY" - <<'PYEOF'
import importlib, os, sys
import pnpdiff, pnpdiff.solvers  # noqa: E401
here = os.getcwd()
for name in ("pnpdiff", "pnpdiff.operators", "pnpdiff.solvers"):
    f = sys.modules[name].__file__
    assert f.startswith(here + os.sep), f"{name} imported from {f}, not from the copy {here}"
import cosmic_ray
print("cosmic-ray", cosmic_ray.__version__ if hasattr(cosmic_ray, "__version__") else "", "| pnpdiff from", os.path.dirname(pnpdiff.__file__))
PYEOF

# 3. config; the test command runs in the copy with the isolated interpreter
MODS=$(printf '"%s", ' "$@"); MODS="[${MODS%, }]"
K_ARG=""; [ -n "$DESELECT" ] && K_ARG="-k '$DESELECT'"
cat > cosmic-ray.toml <<TOML
[cosmic-ray]
module-path = $MODS
timeout = $TIMEOUT
excluded-modules = []
test-command = "$PY -m pytest -x -q -p no:cacheprovider -p no:randomly $K_ARG $TESTS"

[cosmic-ray.distributor]
name = "local"
TOML
echo "--- config"; cat cosmic-ray.toml

CR="$PY -c 'import sys; from cosmic_ray.cli import main; sys.exit(main())'"
echo "--- baseline (unmutated) test run"
start=$(date +%s)
eval "$CR baseline cosmic-ray.toml"
echo "baseline took $(( $(date +%s) - start )) s"
eval "$CR init cosmic-ray.toml session.sqlite"
"$PY" "$REPO/tests/mutation/sample.py" session.sqlite "$SAMPLE" "$SEED"
echo "--- exec (results kept in $WORKDIR/session.sqlite; rerunning exec resumes)"
start=$(date +%s)
eval "$CR exec cosmic-ray.toml session.sqlite"
echo "exec took $(( $(date +%s) - start )) s"
"$PY" "$REPO/tests/mutation/summary.py" session.sqlite --diffs | tee summary.txt
