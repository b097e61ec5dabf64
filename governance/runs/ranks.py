"""Which process of a multi-process launch this is, and the few messages the governance steps need between them.

A run launched on N processes (`torchrun`, `accelerate launch`) trains on all of them, but claims the run, registers
the candidate, signs its provenance and records the outcome once, on the main process. The others learn the run's
id from it and send it their token counts at the end. In a single process every call here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ranks:
    rank: int
    world: int

    @classmethod
    def from_env(cls) -> Ranks:
        """What the launcher set (torchrun and accelerate both set RANK and WORLD_SIZE); one process otherwise."""
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.world > 1

    def start(self, cuda: bool) -> None:
        """Join the process group now (accelerate's shared state, which the trainer reuses), so the governance
        steps can talk before training starts: gloo between CPU processes, NCCL between GPUs."""
        if self.several:
            from accelerate import PartialState

            PartialState(cpu=not cuda)

    def share(self, value: Any) -> Any:
        """The main process's `value`, on every process."""
        if not self.several:
            return value
        import torch.distributed as dist

        box = [value if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def total(self, counts: list[int]) -> list[int]:
        """Element-wise sum of every process's `counts` (each process trained on its own batches)."""
        if not self.several:
            return counts
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(counts, dtype=torch.long)
        if dist.get_backend() == "nccl":  # NCCL reduces GPU tensors only
            tensor = tensor.to(torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))))
        dist.all_reduce(tensor)
        return [int(n) for n in tensor.tolist()]

    def wait(self) -> None:
        if self.several:
            import torch.distributed as dist

            dist.barrier()
