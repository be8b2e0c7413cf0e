"""slafdb's ``slaf.integrations.scanpy``: the out-of-core ``pp`` namespace is not built yet.

``from slaf.integrations.scanpy import pp`` raises ImportError with that reason. Until it
exists, ``read_slaf(path)[selection].to_memory()`` gives an ``anndata.AnnData`` that scanpy's
own ``sc.pp`` functions take.
"""

from __future__ import annotations

from typing import Any

PP_ABSENT = (
    "slaf.pp (out-of-core scanpy preprocessing) is not available in this version of slaf yet; "
    "use scanpy.pp on read_slaf(path)[selection].to_memory()"
)


def __getattr__(name: str) -> Any:
    if name == "pp":
        raise ImportError(PP_ABSENT)
    raise AttributeError(f"module 'slaf.integrations.scanpy' has no attribute {name!r}")
