"""Run by ``torchrun --nproc_per_node=2`` in test_loader.py: each rank saves the cells it served.

Usage: ``torchrun --nproc_per_node=2 loader_ddp.py DATASET OUT_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist

from slaf import SLAFArray
from slaf.ml import SLAFDataLoader


def main() -> None:
    dataset, out = sys.argv[1], Path(sys.argv[2])
    dist.init_process_group("gloo")
    # rank and world_size come from torch.distributed.
    loader = SLAFDataLoader(SLAFArray(dataset), batch_size=16, max_genes=16, verbose=False)
    cells = [int(c) for batch in loader for c in batch["cell_ids"]]
    assert len(loader) == -(-len(cells) // 16)
    np.save(out / f"rank{dist.get_rank()}.npy", np.array(cells))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
