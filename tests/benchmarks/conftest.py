"""The speed suite runs only when asked for (``--benchmark-enable``).

``pyproject.toml`` passes ``--benchmark-disable`` by default so that ``python -m pytest`` stays a
fast correctness run; the benchmark modules are still collected (an import error fails the run)
but their tests are skipped. Run the suite with::

    python -m pytest -n 0 tests/benchmarks --benchmark-enable --benchmark-only --benchmark-group-by=group
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("benchmark_enable", False):
        return
    skip = pytest.mark.skip(reason="speed suite: run with --benchmark-enable")
    for item in items:
        if "benchmarks" in item.path.parts:
            item.add_marker(skip)
