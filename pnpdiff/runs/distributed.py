"""The only reader of ``RANK`` / ``WORLD_SIZE`` in a run: joining the process group a launcher such
as ``torchrun`` set up, and the collectives a batch run needs."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from pnpdiff import env
from pnpdiff.errors import PnPError, RecipeError


def world_size() -> int:
    """The number of processes of this run (``WORLD_SIZE``, checked by :mod:`pnpdiff.env`; 1 without a launcher)."""
    return env.world_size()


def rank() -> int:
    """This process's rank (``RANK``; 0 without a launcher): only rank 0 prints a run's summary."""
    return env.rank()


@dataclass
class Ranks:
    """This process's place in a ``torch.distributed`` run (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def min_all(self, values: list[int]) -> list[int]:
        """The element-wise minimum of ``values`` over the ranks (every rank passes as many)."""
        if self.world == 1 or not values:
            return list(values)
        dist = torch.distributed
        # NCCL reduces CUDA tensors only (on this rank's GPU); gloo reduces CPU tensors
        dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        t = torch.tensor(values, dtype=torch.int64, device=dev)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return [int(v) for v in t.tolist()]

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out


@contextlib.contextmanager
def distributed(device: str | None) -> Iterator[tuple[Ranks, str | None]]:
    """Join the process group a launcher such as ``torchrun`` set up (``WORLD_SIZE`` > 1): gloo
    on the CPU, NCCL on CUDA with the GPU ``LOCAL_RANK``; yield the ranks and this rank's device.

    The other processes must join within ``PNPDIFF_DIST_TIMEOUT`` seconds (:mod:`pnpdiff.env`;
    a line on stderr says what this process waits for once the wait is longer than a few
    seconds), else a :class:`~pnpdiff.PnPError`: variables left over from an earlier torchrun in
    the shell start a run that no other process will ever join."""
    world = env.world_size()
    if world <= 1:
        yield Ranks(), device
        return
    import torch.distributed as dist

    if not dist.is_available():  # pragma: no cover - torch built without distributed support
        raise RecipeError("WORLD_SIZE is set but this torch has no torch.distributed; run without torchrun")
    use_cuda = (device is None and torch.cuda.is_available()) or (device is not None and device.startswith("cuda"))
    if use_cuda:
        local = env.local_rank()
        if local >= torch.cuda.device_count():
            raise PnPError(f"LOCAL_RANK={local} but this machine has {torch.cuda.device_count()} GPU(s); start at most "
                           "one process per GPU (torchrun --nproc_per_node)")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    started = not dist.is_initialized()
    if started:
        _join(dist, world, "nccl" if use_cuda else "gloo")
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size()), device
    finally:
        if started:
            dist.destroy_process_group()


def _join(dist: Any, world: int, backend: str) -> None:
    """``init_process_group`` from the launcher's variables, the rendezvous (every process
    connecting to ``MASTER_ADDR:MASTER_PORT``) bounded by ``PNPDIFF_DIST_TIMEOUT``; the group's
    collectives keep torch's default timeout (a rank may wait long at a barrier for a slower one).

    The rendezvous waits in a thread of its own, so that the main thread still takes SIGINT and
    SIGTERM meanwhile (torch's wait is C++ code, which Python's signal handlers cannot interrupt)."""
    import datetime
    import sys
    import threading


    timeout = env.dist_timeout()
    rank = env.rank()
    others = f"{world - 1} other process{'es' if world > 2 else ''}"
    names = ", ".join([f"WORLD_SIZE={world}", f"RANK={rank}"]
                      + [f"{k}={os.environ[k]}" for k in ("MASTER_ADDR", "MASTER_PORT") if os.environ.get(k)])
    met: dict[str, Any] = {}

    def rendezvous() -> None:
        try:
            met["store"] = next(dist.rendezvous("env://", timeout=datetime.timedelta(seconds=timeout)))
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            met["error"] = err

    waiter = threading.Thread(target=rendezvous, name="pnpdiff-rendezvous", daemon=True)
    waiter.start()
    t0, noted = time.monotonic(), False
    while waiter.is_alive():
        waiter.join(0.1)
        if not noted and waiter.is_alive() and time.monotonic() - t0 >= min(5.0, timeout / 2):
            noted = True  # the others are late: say what this process waits for
            print(f"pnpdiff: waiting for {others} of this run to join ({names}; at most {timeout:g} s: "
                  "PNPDIFF_DIST_TIMEOUT); unset WORLD_SIZE and RANK if you did not start this with torchrun",
                  file=sys.stderr, flush=True)
    try:
        if "error" in met:
            raise met["error"]
        store, rank, world = met["store"]
        store.set_timeout(dist.constants.default_pg_timeout)  # what init_process_group sets for its own store
        dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world)
    except (RuntimeError, ValueError) as err:  # DistStoreError, DistNetworkError: timed out
        text = " ".join(str(err).split())[:200]
        if isinstance(err, getattr(dist, "DistError", ())) and "time" in text.lower():
            raise PnPError(f"the {others} of this run did not join within {timeout:g} s ({names}; "
                           "PNPDIFF_DIST_TIMEOUT); unset WORLD_SIZE and RANK unless you start the run with torchrun, "
                           "whose processes join each other") from None
        raise PnPError(f"WORLD_SIZE={world} but the torch.distributed process group cannot be joined "
                       f"({text}); start the run with torchrun") from None
