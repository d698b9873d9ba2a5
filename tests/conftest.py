"""Shared fixtures of the test suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

# One intra-op thread in each test process of a parallel run (pytest-xdist, pyproject's addopts: one
# process per core), so that the processes do not fight over the cores. Tests that compare exact
# bytes fix their own thread count (tests/behaviour/hashes.py); the speed suite runs with -n 0.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Run a module with one intra-op thread, restoring the previous count afterwards.

    Operator property tests use tiny tensors, for which OpenMP hand-off costs dominate (20-40x
    slower with 2 threads on a shared, loaded CPU). Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
