"""torchrun / DDP plumbing: the same training code runs on one process or many (gloo on CPU, nccl on GPU)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup() -> World:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), else a single-process world."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(device=torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        device = torch.device("cuda", local)
    else:
        dist.init_process_group("gloo")
        device = torch.device("cpu")
    return World(rank, size, local, device)


def teardown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def max_over_ranks(world: World, values: list[float]) -> list[float]:
    """The element-wise maximum of ``values`` over the processes, so that all take the same decision (stop on a
    signal or a non-finite loss that only some of them saw)."""
    if world.size == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float32, device=world.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()
