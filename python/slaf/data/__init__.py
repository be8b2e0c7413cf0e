"""slafdb's import path for the converter (``from slaf.data import SLAFConverter``)."""

from slaf.data.converter import SLAFConverter

__all__ = ["SLAFConverter"]
