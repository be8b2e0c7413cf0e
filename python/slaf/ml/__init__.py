"""Machine learning on SLAF datasets: a PyTorch-ready data loader fed by a Rust prefetcher.

>>> from slaf import SLAFArray
>>> from slaf.ml import SLAFDataLoader
>>> loader = SLAFDataLoader(SLAFArray("pbmc.slaf"), batch_size=32)  # doctest: +SKIP
>>> batch = next(iter(loader))  # doctest: +SKIP
>>> batch["input_ids"].shape  # doctest: +SKIP
torch.Size([32, 2048])
"""

from slaf.ml.dataloaders import SLAFDataLoader

__all__ = ["SLAFDataLoader"]
