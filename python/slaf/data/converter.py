"""``SLAFConverter``: slafdb's converter class over :func:`slaf.convert` and :func:`slaf.append`."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from slaf._compat import ignore_tuning
from slaf.convert import DEFAULT_CHUNK_SIZE, PathLike, append, convert
from slaf.errors import InvalidArgumentError

# slafdb's constructor arguments that choose among its storage layouts and write strategies;
# this writer has one layout (the one slafdb reads fastest), so they change nothing.
_TUNING = (
    "use_integer_keys",
    "chunked",
    "sort_metadata",
    "create_indices",
    "optimize_storage",
    "use_optimized_dtypes",
    "enable_v2_manifest",
    "compact_after_write",
    "tiledb_collection_name",
    "tiledb_layer_name",
    "enable_checkpointing",
)


class SLAFConverter:
    """Converts h5ad / 10x inputs (or an in-memory AnnData) into a SLAF dataset.

    A thin object over :func:`slaf.convert` for code written against slafdb's
    ``SLAFConverter``. ``chunk_size`` and ``max_rows_per_file`` keep their meaning; slafdb's
    other constructor arguments tune its internals and are accepted with a one-time warning.

    Parameters
    ----------
    chunk_size
        Cells read and written per step.
    max_rows_per_file
        Expression rows per Lance fragment.
    **tuning
        slafdb's layout and strategy switches (``use_integer_keys``, ``chunked``, ...).

    Examples
    --------
    >>> from slaf.data import SLAFConverter
    >>> SLAFConverter().convert("pbmc.h5ad", "pbmc.slaf")              # doctest: +SKIP
    """

    def __init__(
        self,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_rows_per_file: int | None = None,
        **tuning: Any,
    ) -> None:
        unknown = sorted(set(tuning) - set(_TUNING))
        if unknown:
            raise TypeError(f"SLAFConverter() got unexpected keyword arguments: {unknown}")
        ignore_tuning("SLAFConverter", **tuning)
        self.chunk_size = chunk_size
        self.max_rows_per_file = max_rows_per_file

    def convert(
        self,
        input_path: PathLike | list[PathLike],
        output_path: PathLike,
        input_format: str = "auto",
        skip_validation: bool | None = None,
    ) -> str:
        """Convert ``input_path`` (one path or several with the same genes) to ``output_path``.

        Parameters
        ----------
        input_path
            h5ad file, 10x MTX folder or 10x h5 file, or a list of them.
        output_path
            The dataset directory to create (it must not exist).
        input_format
            ``"auto"`` (detect), ``"h5ad"``, ``"10x_mtx"`` or ``"10x_h5"``.
        skip_validation
            Accepted for slafdb's signature; inputs are always validated.

        Returns
        -------
        str
            ``output_path``.

        Examples
        --------
        >>> SLAFConverter().convert("pbmc.h5ad", "pbmc.slaf")              # doctest: +SKIP
        'pbmc.slaf'
        """
        ignore_tuning("SLAFConverter.convert", skip_validation=skip_validation)
        return convert(
            input_path,
            output_path,
            input_format=None if input_format == "auto" else input_format,
            chunk_size=self.chunk_size,
            rows_per_fragment=self.max_rows_per_file,
        )

    def convert_anndata(self, adata: Any, output_path: PathLike) -> str:
        """Convert an in-memory ``anndata.AnnData`` to ``output_path``.

        The object is written to a temporary h5ad beside the output first, so the dataset is
        the same as converting that file.

        Parameters
        ----------
        adata
            The AnnData to store.
        output_path
            The dataset directory to create (it must not exist).

        Returns
        -------
        str
            ``output_path``.

        Examples
        --------
        >>> import anndata, numpy as np
        >>> eye = anndata.AnnData(np.eye(3))
        >>> SLAFConverter().convert_anndata(eye, "eye.slaf")               # doctest: +SKIP
        'eye.slaf'
        """
        if not hasattr(adata, "write_h5ad"):
            raise InvalidArgumentError(
                f"convert_anndata needs an anndata.AnnData, not {type(adata).__name__}"
            )
        parent = os.path.dirname(os.path.abspath(os.fspath(output_path)))
        with tempfile.TemporaryDirectory(prefix=".slaf-anndata-", dir=parent) as scratch:
            path = os.path.join(scratch, "input.h5ad")
            adata.write_h5ad(path)
            return self.convert(path, output_path, input_format="h5ad")

    def append(
        self, input_path: PathLike, existing_slaf_path: PathLike, input_format: str = "auto"
    ) -> str:
        """Append the cells of ``input_path`` (same genes) to an existing dataset.

        Parameters
        ----------
        input_path
            h5ad file, 10x MTX folder or 10x h5 file.
        existing_slaf_path
            The dataset to extend.
        input_format
            As for :meth:`convert`.

        Returns
        -------
        str
            ``existing_slaf_path``.

        Examples
        --------
        >>> SLAFConverter().append("more.h5ad", "pbmc.slaf")               # doctest: +SKIP
        'pbmc.slaf'
        """
        return append(
            input_path,
            existing_slaf_path,
            input_format=None if input_format == "auto" else input_format,
            chunk_size=self.chunk_size,
        )
