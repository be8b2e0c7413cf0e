"""slafdb's import path ``slaf.core.slaf.SLAFArray``; the class lives in :mod:`slaf.array`."""

from slaf.array import SLAFArray

__all__ = ["SLAFArray"]
