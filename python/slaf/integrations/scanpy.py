"""slafdb's ``slaf.integrations.scanpy``: ``pp`` is :mod:`slaf.pp`, scanpy's preprocessing
out of core over a :class:`~slaf.LazyAnnData`.

>>> from slaf.integrations.scanpy import pp
>>> pp.normalize_total(read_slaf("pbmc.slaf"), target_sum=1e4)       # doctest: +SKIP
"""

from __future__ import annotations

from slaf import pp

__all__ = ["pp"]
