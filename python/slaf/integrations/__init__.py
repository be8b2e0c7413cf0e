"""Front ends in the shapes users already know: AnnData (``read_slaf``) and scanpy."""

from __future__ import annotations

from typing import Any

from slaf.integrations.anndata import LazyAnnData, LazyExpressionMatrix, read_slaf


def __getattr__(name: str) -> Any:
    if name == "pp":
        import slaf.pp as pp

        return pp
    raise AttributeError(f"module 'slaf.integrations' has no attribute {name!r}")


__all__ = ["LazyAnnData", "LazyExpressionMatrix", "read_slaf"]
