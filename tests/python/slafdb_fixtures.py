"""slafdb-written fixtures made at test time, for checkouts without the shared test data.

The shared fixtures (``../shared/fixtures/slafdb-0.5.2``) were written by slafdb 0.5.2 from real
files. Where those are absent, this module builds small sources in code that mirror each real
one (the same shapes, value kinds and annotation types: CSR integer counts with genes unsorted
within cells, a dense processed X with obsm / varm / obsp / uns, a 10x MTX folder, string, bool,
numeric and categorical columns, a layer), writes them as h5ad or MTX and converts each with
slafdb 0.5.2 (``.venv-slafdb``) with the options the shared ones were made with.

As a script it writes them to a folder, for the Rust tests (``SLAF_GENERATED_FIXTURES``)::

    .venv/bin/python tests/python/slafdb_fixtures.py OUT
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[2]
#: slafdb 0.5.2's interpreter (``bash .ci/setup`` makes it).
SLAFDB_PYTHON = REPO / ".venv-slafdb" / "bin" / "python"


@dataclass(frozen=True)
class Fixture:
    """One generated dataset: its source (under ``sources/``) and slafdb's options."""

    source: str
    chunked: bool
    chunk_size: int = 5000

    @property
    def is_mtx(self) -> bool:
        """Whether the source is a 10x MTX folder (slafdb keeps only its gene symbols)."""
        return not self.source.endswith(".h5ad")


#: generated dataset -> how it is made (the options of the shared fixture it stands in for)
FIXTURES: dict[str, Fixture] = {
    "gen_perturb500_chunked.slaf": Fixture("perturb500.h5ad", chunked=True, chunk_size=128),
    "gen_perturb500_inmemory.slaf": Fixture("perturb500.h5ad", chunked=False),
    "gen_pbmc68k_inmemory.slaf": Fixture("pbmc68k.h5ad", chunked=False),
    "gen_pbmc10x_mtx_chunked.slaf": Fixture("pbmc10x_mtx", chunked=True, chunk_size=300),
    "gen_merfish_chunked.slaf": Fixture("merfish.h5ad", chunked=True, chunk_size=256),
}

#: shared fixture -> the generated one of the same shape and kind of content
STAND_INS: dict[str, str] = {
    "perturb500_chunked.slaf": "gen_perturb500_chunked.slaf",
    "perturb500_inmemory.slaf": "gen_perturb500_inmemory.slaf",
    "pbmc68k_reduced_inmemory.slaf": "gen_pbmc68k_inmemory.slaf",
    "pbmc10x_v3_mtx_chunked.slaf": "gen_pbmc10x_mtx_chunked.slaf",
    "mouse_merfish_chunked.slaf": "gen_merfish_chunked.slaf",
}

# slafdb shares our import name `slaf`: it runs in its own interpreter, one for all datasets.
_CONVERT = """
import json, logging, sys
logging.disable(logging.CRITICAL)
from loguru import logger
logger.remove()
from slaf.data import SLAFConverter
for source, out, chunked, chunk_size in json.loads(sys.argv[1]):
    SLAFConverter(chunked=chunked, chunk_size=chunk_size).convert(source, out)
"""


def _barcodes(rng: np.random.Generator, n: int, length: int) -> list[str]:
    """``n`` distinct 10x-style barcodes (``ACGT…-1``)."""
    seen: dict[str, None] = {}
    while len(seen) < n:
        letters = rng.choice(list("ACGT"), size=length)
        seen["".join(letters) + "-1"] = None
    return list(seen)


def _symbols(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct gene-symbol-like names."""
    seen: dict[str, None] = {}
    while len(seen) < n:
        stem = "".join(rng.choice(list(string.ascii_uppercase), size=rng.integers(2, 6)))
        seen[f"{stem}{rng.integers(1, 40)}"] = None
    return list(seen)


def _category(rng: np.random.Generator, values: list[str], n: int) -> pd.Categorical:
    return pd.Categorical(rng.choice(values, size=n))


def _counts(
    rng: np.random.Generator, n_cells: int, n_genes: int, mean: float, zero: float
) -> sp.csr_matrix:
    """Integer UMI-like counts (float32 CSR): gene-specific means, ``zero`` of them dropped."""
    means = rng.lognormal(np.log(mean), 1.2, size=n_genes)
    depth = rng.lognormal(0.0, 0.4, size=n_cells)
    x = rng.poisson(np.outer(depth, means)).astype(np.float32)
    x[rng.random(x.shape) < zero] = 0
    return sp.csr_matrix(x)


def _unsorted_rows(rng: np.random.Generator, x: sp.csr_matrix) -> sp.csr_matrix:
    """``x`` with the genes of each cell stored in random order (as some real files are)."""
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    order = np.lexsort((rng.random(x.nnz), rows))
    out = sp.csr_matrix((x.data[order], x.indices[order], x.indptr.copy()), shape=x.shape)
    out.has_sorted_indices = False
    return out


def _perturb500(rng: np.random.Generator) -> ad.AnnData:
    """Like cellxgene_small_perturbations: 500 × 2,000 counts, CELLxGENE obs / var, uns."""
    n, g = 500, 2000
    x = _counts(rng, n, g, mean=0.6, zero=0.35)
    # Ribosomal and mitochondrial genes, as queries and QC look for them.
    special = [f"RPL{i}" for i in range(30)] + [f"MT-N{i}" for i in range(10)]
    symbols = list(rng.permutation(_symbols(rng, g - 40) + special))
    totals = rng.lognormal(np.log(12000), 0.6, size=n).astype(np.float32)
    n_genes = np.diff(x.indptr).astype(np.int32)
    obs = pd.DataFrame(
        {
            "CUSTOM001_PuroR": rng.random(n).astype(np.float32),
            "library_name": _category(rng, ["lib1", "lib2", "lib3"], n),
            "is_pilot_data": rng.random(n) < 0.3,
            "donor_id": _category(rng, ["D1", "D2"], n),
            "donor_body_mass_index": _category(rng, ["22.5", "27.1", "unknown"], n),
            "genetic_perturbation_id": _category(rng, ["CERS6-2", "CHST11-2", "ERCC6L-1"], n),
            "fraction_mapped_reads_in_cells_gex_sample": rng.random(n),
            "median_genes_per_cell_sample": rng.integers(1000, 5000, size=n),
            "assay": _category(rng, ["10x 3' v3", "10x 5' v2"], n),
            "sex": _category(rng, ["female", "male"], n),
            "is_primary_data": rng.random(n) < 0.9,
            "n_genes_by_counts": n_genes,
            "log1p_n_genes_by_counts": np.log1p(n_genes.astype(np.float64)),
            "total_counts": totals,
            "log1p_total_counts": np.log1p(totals),
            "pct_counts_mt": (rng.random(n) * 10).astype(np.float32),
        },
        index=_barcodes(rng, n, 24),
    )
    nonzero = np.diff(x.tocsc().indptr)
    mean_counts = np.asarray(x.mean(axis=0)).ravel().astype(np.float64)
    total = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
    var = pd.DataFrame(
        {
            "feature_name": pd.Categorical(symbols),
            "feature_reference": _category(rng, ["NCBITaxon:9606"], g),
            "feature_biotype": _category(rng, ["gene"], g),
            "feature_length": pd.Categorical(rng.integers(300, 9000, size=g).astype(str)),
            "feature_type": _category(rng, ["protein_coding", "lncRNA"], g),
            "feature_is_filtered": np.zeros(g, dtype=bool),
            "mt": np.array([s.startswith("MT-") for s in symbols]),
            "n_cells_by_counts": nonzero.astype(np.int64),
            "mean_counts": mean_counts,
            "log1p_mean_counts": np.log1p(mean_counts),
            "pct_dropout_by_counts": 100 * (1 - nonzero / n),
            "total_counts": total,
            "log1p_total_counts": np.log1p(total),
        },
        index=[f"ENSG{i:011d}" for i in rng.choice(10**6, size=g, replace=False)],
    )
    uns = {
        "genetic_perturbations": {
            "CERS6-2": {"role": "targeting", "protospacer_adjacent_motif": "3' NGG"},
            "CHST11-2": {"role": "control", "protospacer_adjacent_motif": "3' NGG"},
        },
        "organism": "Homo sapiens",
        "organism_ontology_term_id": "NCBITaxon:9606",
        "schema_version": "7.1.0",
        "title": "generated perturbations",
    }
    return ad.AnnData(_unsorted_rows(rng, x), obs=obs, var=var, uns=uns)


def _pbmc68k(rng: np.random.Generator) -> ad.AnnData:
    """Like pbmc68k_reduced: 700 × 765 dense scaled X, categorical obs, obsm, varm, obsp, uns."""
    n, g = 700, 765
    x = rng.normal(0.0, 1.0, size=(n, g)).astype(np.float32).clip(-2.0, 28.0)
    x[rng.integers(0, n, 60), rng.integers(0, g, 60)] = 0  # a few exact zeros, as in the file
    labels = ["CD14+ Monocyte", "Dendritic", "CD56+ NK", "CD4+/CD25 T Reg", "CD19+ B"]
    obs = pd.DataFrame(
        {
            "bulk_labels": _category(rng, labels, n),
            "n_genes": rng.integers(500, 2000, size=n),
            "percent_mito": (rng.random(n) * 0.05).astype(np.float32),
            "n_counts": rng.lognormal(8, 0.4, size=n).astype(np.float32),
            "S_score": rng.normal(size=n).astype(np.float32),
            "G2M_score": rng.normal(size=n).astype(np.float32),
            "phase": _category(rng, ["G1", "S", "G2M"], n),
            "louvain": pd.Categorical(
                rng.integers(0, 11, size=n).astype(str), categories=[str(i) for i in range(11)]
            ),
        },
        index=_barcodes(rng, n, 14),
    )
    var = pd.DataFrame(
        {
            "n_counts": rng.lognormal(6, 1, size=g).astype(np.float32),
            "means": rng.random(g).astype(np.float32),
            "dispersions": rng.normal(2, 0.5, size=g).astype(np.float32),
            "dispersions_norm": rng.normal(size=g).astype(np.float32),
            "highly_variable": rng.random(g) < 0.5,
        },
        index=_symbols(rng, g),
    )
    neighbours = sp.random(n, n, density=0.02, format="csr", random_state=rng, dtype=np.float32)
    uns = {
        "bulk_labels_colors": np.array(["#1f77b4", "#ff7f0e", "#279e68", "#d62728", "#aa40fc"]),
        "louvain": {"params": {"resolution": 1}},
        "neighbors": {"params": {"method": "umap", "n_neighbors": 30}},
        "pca": {"variance": rng.random(50).astype(np.float32)},
    }
    return ad.AnnData(
        x,
        obs=obs,
        var=var,
        uns=uns,
        obsm={
            "X_pca": rng.normal(size=(n, 50)).astype(np.float32),
            "X_umap": rng.normal(size=(n, 2)).astype(np.float32),
        },
        varm={"PCs": rng.normal(size=(g, 50)).astype(np.float32)},
        obsp={"connectivities": (neighbours + neighbours.T).tocsr(), "distances": neighbours},
    )


def _merfish(rng: np.random.Generator) -> ad.AnnData:
    """Like mouse_merfish_val: 1,000 × 1,122 counts, numeric-string var index, a string obs
    column, a dotted column name and NaNs; plus a ``spliced`` layer."""
    n, g = 1000, 1122
    x = _counts(rng, n, g, mean=0.12, zero=0.2)
    scores = rng.random(n)
    scores[::17] = np.nan
    obs = pd.DataFrame(
        {
            "donor_id": _category(rng, ["mouse1", "mouse2"], n),
            "cell_type_ontology_term_id": _category(rng, ["CL:0000127", "CL:0000540"], n),
            "cluster_confidence_score": scores,
            "high_quality_transfer": rng.random(n) < 0.8,
            "brain.region": _category(rng, ["CTXsp", "HPF", "TH"], n),
            "observation_joinid": [
                "".join(rng.choice(list("abcdefgh!#"), size=10)) for _ in range(n)
            ],
        },
        index=[str(v) for v in rng.choice(10**15, size=n, replace=False)],
    )
    symbols = _symbols(rng, g)
    var = pd.DataFrame(
        {
            "ensembl_id": [f"ENSMUSG{i:011d}" for i in range(g)],
            "gene_name": symbols,
            "feature_is_filtered": np.zeros(g, dtype=bool),
            "feature_biotype": _category(rng, ["gene"], g),
            "feature_length": rng.integers(300, 9000, size=g),
        },
        index=[str(i) for i in range(g)],
    )
    spliced = x.copy()
    spliced.data = np.floor(spliced.data / 2).astype(np.float32)
    spliced.eliminate_zeros()
    return ad.AnnData(x, obs=obs, var=var, layers={"spliced": spliced})


def _write_pbmc10x_mtx(rng: np.random.Generator, folder: Path) -> None:
    """A 10x v3 MTX folder like scanpy's chr21 test data: 1,107 cells × 507 genes, entries
    in no particular order."""
    n, g = 1107, 507
    x = _counts(rng, n, g, mean=0.02, zero=0.0).tocoo()
    order = rng.permutation(x.nnz)
    folder.mkdir(parents=True)
    with gzip.open(folder / "matrix.mtx.gz", "wt") as f:
        f.write("%%MatrixMarket matrix coordinate integer general\n")
        f.write(f"{g} {n} {x.nnz}\n")
        for i, j, v in zip(x.col[order] + 1, x.row[order] + 1, x.data[order], strict=True):
            f.write(f"{i} {j} {int(v)}\n")
    genes = pd.DataFrame(
        {
            "id": [f"ENSG{i:011d}" for i in rng.choice(10**6, size=g, replace=False)],
            "symbol": _symbols(rng, g),
            "type": "Gene Expression",
        }
    )
    genes.to_csv(folder / "features.tsv.gz", sep="\t", header=False, index=False)
    pd.Series(_barcodes(rng, n, 16)).to_csv(
        folder / "barcodes.tsv.gz", sep="\t", header=False, index=False
    )


def write_sources(folder: Path, seed: int = 2024) -> None:
    """Writes every generated source file into ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    _perturb500(rng).write_h5ad(folder / "perturb500.h5ad")
    _pbmc68k(rng).write_h5ad(folder / "pbmc68k.h5ad")
    _merfish(rng).write_h5ad(folder / "merfish.h5ad")
    _write_pbmc10x_mtx(rng, folder / "pbmc10x_mtx")


def generate(out: Path, slafdb_python: Path = SLAFDB_PYTHON) -> float:
    """Writes the sources to ``out/sources`` and every fixture of ``FIXTURES`` to ``out``;
    returns the seconds it took. Raises ``RuntimeError`` with slafdb's output if it fails."""
    start = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    write_sources(out / "sources")
    jobs = [
        [str(out / "sources" / f.source), str(out / name), f.chunked, f.chunk_size]
        for name, f in FIXTURES.items()
    ]
    # Without our PYTHONPATH, so that `import slaf` finds slafdb's package.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(slafdb_python), "-c", _CONVERT, json.dumps(jobs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=out,
    )
    if done.returncode != 0:
        raise RuntimeError(f"slafdb 0.5.2 could not write the fixtures:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT")
    seconds = generate(Path(sys.argv[1]))
    print(f"wrote {len(FIXTURES)} slafdb 0.5.2 fixtures to {sys.argv[1]} in {seconds:.1f} s")
