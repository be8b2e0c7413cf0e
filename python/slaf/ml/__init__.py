"""slafdb's ``slaf.ml`` (``SLAFDataLoader`` and tokenizers for PyTorch) is not built yet.

Importing it raises ImportError with that reason, so code written for slafdb fails at the
import that names the missing piece rather than later. The tokenizers themselves exist:
``slaf.polars`` (Polars expressions) and ``slaf_tokenize`` in DuckDB.
"""

raise ImportError(
    "slaf.ml (SLAFDataLoader for PyTorch) is not available in this version of slaf yet; "
    "tokenize with slaf.polars.geneformer / slaf.polars.scgpt or DuckDB's slaf_tokenize"
)
