"""``slaf.tl``: tools over a dataset's embeddings, as ``scanpy.tl`` is over an AnnData's.

>>> import slaf
>>> data = slaf.SLAFArray("atlas.slaf")                                        # doctest: +SKIP
>>> labels = slaf.tl.transfer_labels(data, vectors, key="X_scvi", label="cell_type")
...                                                                            # doctest: +SKIP
"""

from __future__ import annotations

from slaf.tl.transfer import transfer_labels

__all__ = ["transfer_labels"]
