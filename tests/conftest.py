"""Shared fixtures of the test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


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
