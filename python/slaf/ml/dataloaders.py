"""``SLAFDataLoader``: tokenized (or raw) cells for PyTorch training, prepared in Rust.

A drop-in for slafdb 0.5.2's ``slaf.ml.dataloaders.SLAFDataLoader``: it takes the same arguments
and yields dicts with the same keys. Reading, shuffling and tokenizing happen on Rust threads
(no GIL, no worker processes); Python only slices finished windows into batches, without
copying, and wraps them with ``torch.from_numpy``.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from slaf import _native

try:  # torch is optional: without it, batches are numpy arrays.
    import torch
    from torch.utils.data import IterableDataset as _Base

    TORCH_AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only where torch is absent
    torch = None
    _Base = object
    TORCH_AVAILABLE = False

#: slafdb's tuning knobs for its own Python prefetcher, with their defaults. The Rust prefetcher
#: has no use for them; a non-default value is accepted with a one-time warning.
_IGNORED_KNOBS: dict[str, Any] = {
    "batches_per_chunk": 1,
    "by_fragment": True,
    "use_mixture_of_scanners": True,
    "n_scanners": 16,
    "max_queue_size": 5000,
    "parallelize_fragment_reads": False,
    "prefetcher_ready_timeout": 10.0,
}
_warned: set[str] = set()

#: Tokenized windows stay below this many bytes (ids, mask and values of every cell).
_MAX_WINDOW_BYTES = 128 << 20

_TOKENIZERS = ("geneformer", "geneformer_v2", "scgpt")


def _warn_ignored(knobs: Mapping[str, Any]) -> None:
    for name, value in knobs.items():
        if value != _IGNORED_KNOBS[name] and name not in _warned:
            _warned.add(name)
            warnings.warn(
                f"SLAFDataLoader: {name}={value!r} tunes slafdb's Python prefetcher and has no "
                "effect here (reading and tokenizing run on Rust threads)",
                UserWarning,
                stacklevel=3,
            )


def _distributed() -> tuple[int, int]:
    """``(rank, world_size)`` of an initialised ``torch.distributed`` group, else ``(0, 1)``."""
    if TORCH_AVAILABLE and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class SLAFDataLoader(_Base):  # type: ignore[misc,valid-type]
    """Batches of tokenized (or raw) cells of a SLAF dataset, for PyTorch training loops.

    Parameters
    ----------
    slaf_array
        The dataset: a :class:`slaf.SLAFArray` (or a path).
    tokenizer_type
        ``"geneformer"``, ``"geneformer_v2"`` or ``"scgpt"`` (the tokenizers of
        ``slaf_tokenize`` and ``slaf.polars``). Ignored with ``raw_mode=True``.
    batch_size
        Cells per batch.
    max_genes
        Sequence length: Geneformer's ``max_genes``, scGPT's ``max_len`` (``<cls>`` included).
    vocab_size
        Cap of the slaf vocabulary (gene tokens ``>= vocab_size`` are dropped); not used with a
        ``token_dictionary``.
    n_expression_bins
        scGPT value bins.
    n_epochs
        Epochs one ``for`` loop runs; batches carry ``"epoch"`` when it is above 1.
    raw_mode
        Yield raw counts as a CSR batch ``x`` (``torch.sparse_csr_tensor``, or a dense tensor
        with ``dense=True``; scipy / numpy without torch) instead of tokens.
    verbose
        Report rate and queue state every few seconds and at the end of a loop.
    batches_per_chunk, by_fragment, use_mixture_of_scanners, n_scanners, max_queue_size,
    parallelize_fragment_reads, prefetcher_ready_timeout
        slafdb's tuning knobs: accepted, without effect (a one-time warning when changed).
    prefetch_batch_size
        Expression rows read, shuffled and tokenized together (a window of whole batches).
    shuffle
        Serve cells in a seeded random order (a different one each epoch).
    seed
        Same seed: the same batches in the same order, on every run and machine.
    drop_last
        Drop the last incomplete batch; every rank then serves the same number of batches.
    rank, world_size
        This process's share of each epoch; by default taken from ``torch.distributed`` when
        it is initialised (else the whole dataset).
    cells
        A subset of cells: integer ids, a boolean mask, names or a slice.
    cell_filter
        A subset of cells by metadata: a SQL predicate over the obs columns.
    layer
        Read this layer instead of X.
    dense
        Raw mode: dense ``x`` instead of CSR.
    pin_memory
        Copy tensors into pinned (page-locked) host memory when CUDA is available, for
        ``.cuda(non_blocking=True)``.
    return_tensors
        ``"pt"`` (torch tensors, the default with torch installed) or ``"np"`` (numpy arrays).
    num_threads
        Rust worker threads (default: the number of CPUs, at most 4).
    tokenizer_options
        More tokenizer options, as ``slaf_tokenize`` names them: ``token_dictionary``,
        ``gene_medians``, ``counts_scope``, ``target_sum``, ``normalize_total``, ``log1p``,
        ``include_zero_genes``, ``continuous``, ``tokenizer_seed``.

    Examples
    --------
    >>> from slaf import SLAFArray
    >>> from slaf.ml.dataloaders import SLAFDataLoader
    >>> loader = SLAFDataLoader(SLAFArray("pbmc.slaf"), batch_size=32)  # doctest: +SKIP
    >>> for batch in loader:  # doctest: +SKIP
    ...     input_ids = batch["input_ids"]  # LongTensor [32, 2048]
    ...     attention_mask = batch["attention_mask"]  # BoolTensor [32, 2048]
    ...     cell_ids = batch["cell_ids"]  # LongTensor [32]
    >>> for epoch in range(3):  # doctest: +SKIP
    ...     loader.set_epoch(epoch)  # like DistributedSampler.set_epoch
    ...     for batch in loader:
    ...         ...
    """

    def __init__(
        self,
        slaf_array: Any,
        tokenizer_type: str = "geneformer",
        batch_size: int = 32,
        max_genes: int = 2048,
        vocab_size: int = 50000,
        n_expression_bins: int = 10,
        n_epochs: int = 1,
        raw_mode: bool = False,
        verbose: bool = True,
        batches_per_chunk: int = 1,
        by_fragment: bool = True,
        use_mixture_of_scanners: bool = True,
        n_scanners: int = 16,
        prefetch_batch_size: int = 4194304,
        max_queue_size: int = 5000,
        parallelize_fragment_reads: bool = False,
        prefetcher_ready_timeout: float = 10.0,
        *,
        shuffle: bool = True,
        seed: int = 42,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        cells: Any = None,
        cell_filter: str | None = None,
        layer: str | None = None,
        dense: bool = False,
        pin_memory: bool = False,
        return_tensors: str | None = None,
        num_threads: int | None = None,
        tokenizer_options: Mapping[str, Any] | None = None,
    ) -> None:
        if use_mixture_of_scanners:
            # slafdb's checks, kept so that code written against it fails the same way.
            if not 1 <= n_scanners <= 100:
                raise ValueError("n_scanners must be between 1 and 100")
            if not 1000 <= prefetch_batch_size <= 10_000_000:
                raise ValueError("prefetch_batch_size must be between 1,000 and 10,000,000")
        if not raw_mode and tokenizer_type not in _TOKENIZERS:
            raise ValueError(
                f"tokenizer_type must be one of {list(_TOKENIZERS)}; "
                f"tokenizer_type={tokenizer_type!r} is not supported."
            )
        if batch_size < 1 or n_epochs < 0:
            raise ValueError("batch_size must be at least 1 and n_epochs at least 0")
        if return_tensors is None:
            return_tensors = "pt" if TORCH_AVAILABLE else "np"
        if return_tensors not in ("pt", "np"):
            raise ValueError("return_tensors must be 'pt' or 'np'")
        if return_tensors == "pt" and not TORCH_AVAILABLE:
            raise ImportError("return_tensors='pt' needs PyTorch: pip install torch")
        _warn_ignored(
            {
                "batches_per_chunk": batches_per_chunk,
                "by_fragment": by_fragment,
                "use_mixture_of_scanners": use_mixture_of_scanners,
                "n_scanners": n_scanners,
                "max_queue_size": max_queue_size,
                "parallelize_fragment_reads": parallelize_fragment_reads,
                "prefetcher_ready_timeout": prefetcher_ready_timeout,
            }
        )
        if isinstance(slaf_array, str | os.PathLike):
            from slaf.array import SLAFArray

            slaf_array = SLAFArray(slaf_array)
        self.slaf_array = slaf_array
        self.tokenizer_type = None if raw_mode else tokenizer_type
        self.batch_size = batch_size
        self.max_genes = max_genes
        self.vocab_size = vocab_size
        self.n_expression_bins = n_expression_bins
        self.n_epochs = n_epochs
        self.raw_mode = raw_mode
        self.verbose = verbose
        self.prefetch_batch_size = prefetch_batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.dense = dense
        self.pin_memory = pin_memory
        self.return_tensors = return_tensors
        self.device = None  # batches stay on the CPU, as slafdb's do
        self._epoch = 0
        self._explicit_shard = (rank, world_size)
        self._threads = num_threads or min(os.cpu_count() or 2, 4)
        self._selection = {
            "cells": None if cells is None else _selector(cells),
            "cell_filter": cell_filter,
            "layer": layer,
        }
        self._tokenizer = self._tokenizer_kwargs(dict(tokenizer_options or {}))
        self._natives: dict[tuple[int, int], Any] = {}
        self.rank, self.world_size = self._shard(worker=False)
        self._native = self._native_for(self.rank, self.world_size)

    def _tokenizer_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        if self.raw_mode:
            return {}
        kwargs: dict[str, Any] = {"tokenizer": self.tokenizer_type, "max_genes": self.max_genes}
        if "token_dictionary" not in options:
            kwargs["vocab_size"] = self.vocab_size
        if self.tokenizer_type == "scgpt" and not options.get("continuous"):
            kwargs["n_bins"] = self.n_expression_bins
        return {**kwargs, **options}

    def _shard(self, worker: bool) -> tuple[int, int]:
        rank, world_size = self._explicit_shard
        if rank is None or world_size is None:
            dist_rank, dist_world = _distributed()
            rank = dist_rank if rank is None else rank
            world_size = dist_world if world_size is None else world_size
        if worker and TORCH_AVAILABLE:
            # Inside torch DataLoader workers, each worker serves its own part of the rank's.
            info = torch.utils.data.get_worker_info()
            if info is not None:
                rank, world_size = rank * info.num_workers + info.id, world_size * info.num_workers
        return int(rank), int(world_size)

    def _native_for(self, rank: int, world_size: int) -> Any:
        key = (rank, world_size)
        if key not in self._natives:
            native_ds = self.slaf_array._native
            n_cells, _ = native_ds.shape
            mean_nnz = max(native_ds.nnz / max(n_cells, 1), 1.0)
            window = max(int(self.prefetch_batch_size / mean_nnz), self.batch_size)
            if not self.raw_mode:
                # Bound a window's token buffers (int64 ids, bool mask, float32 values).
                window = min(window, max(_MAX_WINDOW_BYTES // (13 * self.max_genes), 1))
            self._natives[key] = _native.NativeLoader(
                native_ds,
                **self._selection,
                **self._tokenizer,
                batch_size=self.batch_size,
                shuffle=self.shuffle,
                seed=self.seed,
                rank=rank,
                world_size=world_size,
                drop_last=self.drop_last,
                window_cells=window,
                threads=self._threads,
                queue_windows=self._threads + 2,
            )
        return self._natives[key]

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch`` (and the ``n_epochs - 1`` after it) on the next loop.

        Like ``DistributedSampler.set_epoch``: call it before each epoch for a new order;
        without it every loop repeats the same order.

        Parameters
        ----------
        epoch
            The epoch number (seeds the order together with ``seed``).

        Examples
        --------
        >>> loader.set_epoch(3)  # doctest: +SKIP
        """
        self._epoch = int(epoch)

    def __len__(self) -> int:
        """Batches one loop yields: this rank's batches per epoch times ``n_epochs``."""
        return self._native.batches_per_epoch * self.n_epochs

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Yield batches; breaking out of the loop stops the Rust threads at once."""
        native = self._native_for(*self._shard(worker=True))
        prefetcher = native.start(self._epoch, self.n_epochs)
        report = _Report(self.verbose, prefetcher)
        try:
            while (window := prefetcher.next()) is not None:
                for batch in self._batches(window, native.n_genes):
                    report.batch(len(batch["cell_ids"]))
                    yield batch
        finally:
            report.done()
            prefetcher.close()

    def _batches(self, window: dict[str, Any], n_genes: int) -> Iterator[dict[str, Any]]:
        cell_ids = window["cell_ids"]
        epoch = window["epoch"]
        for start in range(0, len(cell_ids), self.batch_size):
            stop = min(start + self.batch_size, len(cell_ids))
            if self.raw_mode:
                batch = {"x": self._raw(window, start, stop, n_genes)}
            else:
                batch = {
                    "input_ids": self._tensor(window["input_ids"][start:stop]),
                    "attention_mask": self._tensor(window["attention_mask"][start:stop]),
                }
                if "values" in window:
                    batch["values"] = self._tensor(window["values"][start:stop])
            batch["cell_ids"] = self._tensor(cell_ids[start:stop])
            if self.n_epochs > 1:
                batch["epoch"] = epoch
            yield batch

    def _tensor(self, array: np.ndarray) -> Any:
        if self.return_tensors == "np":
            return array
        tensor = torch.from_numpy(array)
        if self.pin_memory and torch.cuda.is_available():
            tensor = tensor.pin_memory()
        return tensor

    def _raw(self, window: dict[str, Any], start: int, stop: int, n_genes: int) -> Any:
        indptr = window["indptr"][start : stop + 1]
        lo, hi = int(indptr[0]), int(indptr[-1])
        indptr = indptr - lo
        indices, values = window["indices"][lo:hi], window["values"][lo:hi]
        shape = (stop - start, n_genes)
        if self.return_tensors == "np":
            import scipy.sparse as sp

            x = sp.csr_matrix((values, indices, indptr), shape=shape)
            return x.toarray() if self.dense else x
        x = torch.sparse_csr_tensor(
            torch.from_numpy(indptr),
            torch.from_numpy(indices),
            torch.from_numpy(values),
            size=shape,
            check_invariants=False,  # valid by construction: rows as read, in range
        )
        if self.dense:
            x = x.to_dense()
        if self.pin_memory and torch.cuda.is_available():
            x = x.pin_memory()
        return x


def _selector(cells: Any) -> Any:
    from slaf._selectors import to_native

    return to_native(cells, "cell")


class _Report:
    """``verbose``: rate and queue state every few seconds, and a summary at the end."""

    EVERY_S = 10.0

    def __init__(self, verbose: bool, prefetcher: Any) -> None:
        self.verbose = verbose
        self.prefetcher = prefetcher
        self.start = self.last = time.perf_counter()
        self.batches = self.cells = 0

    def batch(self, cells: int) -> None:
        self.batches += 1
        self.cells += cells
        if self.verbose and time.perf_counter() - self.last >= self.EVERY_S:
            self.last = time.perf_counter()
            self._print("")

    def done(self) -> None:
        if self.verbose:
            self._print(" (done)")

    def _print(self, suffix: str) -> None:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        ready, delivered, total = self.prefetcher.queue_state()
        print(
            f"SLAFDataLoader: {self.batches} batches, {self.cells / elapsed:,.0f} cells/s; "
            f"windows ready {ready}, delivered {delivered}/{total}{suffix}",
            file=sys.stderr,
        )
