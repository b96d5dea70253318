"""Distributed training plumbing: process group from torchrun's environment, DDP or FSDP2 wrapping,
full (gathered) state dicts for rank-0 checkpoints, and small collectives.

Not a launcher: `torchrun --nproc_per_node=N -m taesan pretrain ...` starts the processes; without
torchrun every function here degrades to the single-process case.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init(device: torch.device | None = None) -> DistInfo:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); gloo on CPU, nccl on CUDA.

    Without those variables (or with WORLD_SIZE=1) nothing happens: a single process.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        cuda = device is not None and device.type == "cuda"
        if cuda:
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return info


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums across ranks in one all-reduce (a loss, stop flags), or the values themselves."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's value on every rank (e.g. a stop decision taken from rank 0's clock)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: nn.Module, info: DistInfo, fsdp: bool = False) -> nn.Module:
    """DDP (every rank holds the whole model, gradients all-reduced) or FSDP2 (`fully_shard`:
    parameters, gradients and optimizer state sharded over ranks; each transformer block is one unit).
    """
    if not info.enabled and not fsdp:
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        if not dist.is_initialized():
            raise RuntimeError("FSDP needs a process group: launch with torchrun")
        for module in model.modules():
            if isinstance(module, nn.ModuleList):
                for block in module:
                    fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [info.local_rank] if next(model.parameters()).device.type == "cuda" else None
    # a head may leave parameters out of the loss (BERT's pooler under the masked LM): DDP must be told
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state dict on CPU, gathered from shards when FSDP is used (a collective: all ranks call)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
    )

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state keyed by parameter name (not position), gathered to CPU (a collective)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
    )

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a name-keyed full optimizer state (from `full_optimizer_state`) into a plain, DDP or FSDP model's optimizer."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_optimizer_state_dict,
    )

    # strict=False: a parameter that never received a gradient (an unused pooler) has no state to restore
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True, strict=False))
