"""``slaf.pp``: scanpy's preprocessing, out of core over a :class:`~slaf.LazyAnnData`.

Same signatures, defaults, output column names and numbers as ``scanpy.pp`` (checked against
scanpy 1.11.5): statistics come from streamed passes over cell blocks, transformations of X
(``normalize_total``, ``log1p``, ``scale``) are recorded on the LazyAnnData and applied to
every block read afterwards, filters narrow its selection in place, and PCA streams a Gram
matrix over the selected genes.

>>> import slaf
>>> adata = slaf.read_slaf("pbmc.slaf")                               # doctest: +SKIP
>>> slaf.pp.calculate_qc_metrics(adata, inplace=True)                 # doctest: +SKIP
>>> slaf.pp.filter_cells(adata, min_genes=200)                        # doctest: +SKIP
>>> slaf.pp.normalize_total(adata, target_sum=1e4)                    # doctest: +SKIP
>>> slaf.pp.log1p(adata)                                              # doctest: +SKIP
>>> slaf.pp.highly_variable_genes(adata, n_top_genes=2000)            # doctest: +SKIP
>>> slaf.pp.pca(adata, n_comps=50)                                    # doctest: +SKIP
"""

from __future__ import annotations

from slaf.pp.filters import filter_cells, filter_genes
from slaf.pp.hvg import highly_variable_genes
from slaf.pp.normalize import log1p, normalize_total
from slaf.pp.pca import pca
from slaf.pp.qc import calculate_qc_metrics
from slaf.pp.scale import scale

__all__ = [
    "calculate_qc_metrics",
    "filter_cells",
    "filter_genes",
    "highly_variable_genes",
    "log1p",
    "normalize_total",
    "pca",
    "scale",
]
