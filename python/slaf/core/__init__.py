"""slafdb's import path for :class:`~slaf.array.SLAFArray` (``from slaf.core import SLAFArray``)."""

from slaf.array import SLAFArray

__all__ = ["SLAFArray"]
