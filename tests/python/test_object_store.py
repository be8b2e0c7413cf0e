"""Datasets read in place on S3: a real S3 API on loopback (moto_server, started on a free port
for this module), a generated dataset uploaded to a bucket and read back through each entry
point (equal to the local read), credentials from options and from the environment, the
failure cases, and the number of requests an open and a 1,000-cell read make."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import duckdb
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from slaf import SLAFArray, convert
from slaf.convert import append
from slaf.integrations import read_slaf
from slaf.ml import SLAFDataLoader
from slaf.polars import scan_slaf

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benches"))
from moto_s3 import MOTO_SERVER, MotoS3, free_port

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "python" / "slaf" / "slaf.duckdb_extension"
BUCKET = "slaf-test"
N_CELLS = 3000


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """moto_server with a generated dataset (3,000 cells, obs, obsm, a layer) under
    ``s3://slaf-test/d.slaf``, and the same dataset on local disk."""
    if not MOTO_SERVER.exists():
        missing = f"moto_server is not installed ({MOTO_SERVER}; moto[server] in requirements.txt)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("s3")
    rng = np.random.default_rng(3)
    n, g = N_CELLS, 60
    x = sp.random(n, g, density=0.15, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 20).astype(np.float32)
    adata = ad.AnnData(
        X=x,
        obs=pd.DataFrame(
            {"cell_type": pd.Categorical(rng.choice(["T", "B", "NK"], n)), "n": rng.random(n)},
            index=[f"c{i}" for i in range(n)],
        ),
        var=pd.DataFrame(index=[f"g{j}" for j in range(g)]),
    )
    adata.obsm["X_emb"] = rng.normal(size=(n, 8)).astype(np.float32)
    adata.layers["half"] = (x * 0.5).tocsr()
    adata.write_h5ad(root / "src.h5ad")
    local = root / "d.slaf"
    convert(root / "src.h5ad", local)
    with MotoS3(root) as moto:
        moto.create_bucket(BUCKET)
        uri = moto.upload(local, BUCKET, "d.slaf")
        yield {"moto": moto, "local": local, "uri": uri, "root": root}


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{EXTENSION}'")
    return con


def _map(options: dict[str, str]) -> str:
    return "MAP {" + ", ".join(f"'{k}': '{v}'" for k, v in options.items()) + "}"


def test_slaf_array_reads_equal_the_local_dataset(s3: dict) -> None:
    remote = SLAFArray(s3["uri"], storage_options=s3["moto"].options)
    local = SLAFArray(s3["local"])
    assert remote.shape == local.shape and remote.nnz == local.nnz
    assert remote.obs.equals(local.obs) and remote.var.equals(local.var)
    cells = np.random.default_rng(0).choice(N_CELLS, 200, replace=False)
    a = remote.get_submatrix(cells, slice(5, 40), format="csr")
    b = local.get_submatrix(cells, slice(5, 40), format="csr")
    assert (a != b).nnz == 0
    np.testing.assert_array_equal(remote.obsm["X_emb"], local.obsm["X_emb"])
    assert (remote.layers["half"] != local.layers["half"]).nnz == 0
    hits = remote.nearest_cells(local.obsm["X_emb"][:3], k=4)
    assert hits.equals(local.nearest_cells(local.obsm["X_emb"][:3], k=4))


def test_read_slaf_query_and_polars_equal_the_local_dataset(s3: dict) -> None:
    options = s3["moto"].options
    lazy = read_slaf(s3["uri"], storage_options=options)
    view = lazy[lazy.obs.cell_type == "B", :][:50]
    expected = read_slaf(s3["local"])
    expected_view = expected[expected.obs.cell_type == "B", :][:50]
    assert (view.X.compute() != expected_view.X.compute()).nnz == 0
    sql = (
        "SELECT c.cell_type, count(*) AS n, sum(e.value) AS total FROM expression e "
        "JOIN cells c USING (cell_integer_id) WHERE c.n < 0.5 GROUP BY 1 ORDER BY 1"
    )
    remote = SLAFArray(s3["uri"], storage_options=options)
    assert remote.query(sql).equals(SLAFArray(s3["local"]).query(sql))
    # Credentials stay out of what users print: plans and error messages.
    plan = remote.explain_query("SELECT * FROM expression WHERE cell_integer_id = 3")
    assert plan.pushed and "storage_options" in plan.sql and "testing" not in plan.sql
    with pytest.raises(ValueError) as error:
        remote.query("SELECT nope FROM cells")
    assert "testing" not in str(error.value)
    frame = scan_slaf(s3["uri"], "cells_x", storage_options=options).head(20).collect()
    assert frame.equals(scan_slaf(s3["local"], "cells_x").head(20).collect())


def test_loader_batches_equal_the_local_dataset(s3: dict) -> None:
    def first_batches(data: SLAFArray) -> list:
        loader = SLAFDataLoader(data, tokenizer_type="geneformer", batch_size=64, max_genes=32)
        loader.set_epoch(0)
        out = []
        for i, batch in enumerate(loader):
            out.append((batch["cell_ids"].tolist(), batch["input_ids"].tolist()))
            if i == 3:
                break
        return out

    remote = SLAFArray(s3["uri"], storage_options=s3["moto"].options)
    assert first_batches(remote) == first_batches(SLAFArray(s3["local"]))


def test_duckdb_functions_with_storage_options_and_environment(
    s3: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, local, opts = s3["uri"], s3["local"], _map(s3["moto"].options)
    con = _connect()
    queries = [
        "SELECT n_cells, nnz FROM slaf_info('{p}'{o})",
        "SELECT count(*), sum(value) FROM slaf_scan('{p}', 'expression'{o})",
        "SELECT * FROM slaf_slice('{p}', cells := '100:140', genes := [1, 7]{o}) ORDER BY ALL",
        "SELECT cell_integer_id, input_ids FROM slaf_tokenize('{p}', tokenizer := 'geneformer', "
        "max_genes := 16, cells := '0:30'{o}) ORDER BY 1",
        "SELECT cell_id FROM slaf_knn('{p}', 'obsm', 'X_emb', [0, 0, 0, 0, 0, 0, 0, 0], k := 3{o})",
    ]
    for sql in queries:
        remote = con.execute(sql.format(p=uri, o=f", storage_options := {opts}")).fetchall()
        assert remote == con.execute(sql.format(p=local, o="")).fetchall(), sql
    with pytest.raises(duckdb.Error, match="storage_options"):
        con.execute(f"SELECT * FROM slaf_info('{uri}', storage_options := 'x')").fetchall()
    # An unchanged remote dataset is not opened again: one request for its config.json.
    before = len(s3["moto"].requests())
    con.execute(queries[0].format(p=uri, o=f", storage_options := {opts}")).fetchall()
    assert s3["moto"].requests()[before:] == [f"GET /{BUCKET}/d.slaf/config.json"]
    # The standard AWS variables, as users have them set.
    env = s3["moto"].environment
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert _connect().execute(queries[0].format(p=uri, o="")).fetchall() == [
        (N_CELLS, SLAFArray(local).nnz)
    ]
    cli = subprocess.run(
        [sys.executable, "-m", "slaf.cli", "info", uri],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert cli.returncode == 0 and f"{N_CELLS} cells" in cli.stdout, cli.stderr


def test_credentials_from_a_profile_or_a_clear_error(s3: dict, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[lab]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {
        "AWS_ENDPOINT_URL": s3["moto"].endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }

    def info(profile: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "slaf.cli", "info", s3["uri"]]
        env_now = env | {"AWS_PROFILE": profile}
        return subprocess.run(command, capture_output=True, text=True, env=env_now, timeout=120)

    assert info("lab").returncode == 0
    missing = info("missing")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"slaf: error: reading {s3['uri']}/config.json: no AWS credentials were found (set "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or pass them in "
        "storage_options)"
    )


def test_failures_name_the_uri_and_never_hang(s3: dict) -> None:
    options = s3["moto"].options
    with pytest.raises(FileNotFoundError, match=r"s3://no-such-bucket/d\.slaf: the bucket does"):
        SLAFArray("s3://no-such-bucket/d.slaf", storage_options=options)
    with pytest.raises(FileNotFoundError, match=r"s3://slaf-test/nothing\.slaf: nothing is stored"):
        SLAFArray(f"s3://{BUCKET}/nothing.slaf", storage_options=options)
    with pytest.raises(ValueError, match=r"d\.slaf/cells\.lance is not a SLAF dataset"):
        SLAFArray(f"{s3['uri']}/cells.lance", storage_options=options)
    closed = {**options, "aws_endpoint": f"http://127.0.0.1:{free_port()}"}
    started = time.monotonic()
    with pytest.raises(OSError, match=r"s3://slaf-test/d\.slaf/config\.json"):
        SLAFArray(s3["uri"], storage_options=closed)
    assert time.monotonic() - started < 30
    con = _connect()
    with pytest.raises(duckdb.Error, match="the bucket does not exist"):
        con.execute(
            f"SELECT * FROM slaf_info('s3://no-such-bucket/x.slaf', storage_options := "
            f"{_map(options)})"
        ).fetchall()
    # Appending to a dataset on object storage is not built: refused before anything is written.
    before = len(s3["moto"].requests())
    with pytest.raises(ValueError, match="appending to a dataset on object storage is not"):
        append(s3["root"] / "src.h5ad", s3["uri"])
    assert s3["moto"].requests()[before:] == []


def _keys(s3: dict, prefix: str) -> list[str]:
    listed = s3["moto"].client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def _options(s3: dict) -> dict:
    return {"storage_options": s3["moto"].options}


def _staging_folders() -> list[str]:
    return [p for p in os.listdir(tempfile.gettempdir()) if p.startswith(".slaf-upload")]


def test_convert_to_s3(s3: dict) -> None:
    options = s3["moto"].options
    uri = f"s3://{BUCKET}/converted.slaf"
    assert convert(s3["root"] / "src.h5ad", uri, storage_options=options) == uri
    written = SLAFArray(uri, storage_options=options)
    local = SLAFArray(s3["local"])
    assert written.shape == local.shape and written.obs.equals(local.obs)
    x = written.get_submatrix(slice(0, 500), format="csr")
    assert (x != local.get_submatrix(slice(0, 500), format="csr")).nnz == 0
    np.testing.assert_array_equal(written.obsm["X_emb"], local.obsm["X_emb"])
    # The gene-major table went up with it and serves gene reads from the store.
    assert written._native.gene_major_status() == "fresh"
    genes = local.var["gene_id"].to_list()[:3]
    assert written.get_gene_expression(genes).equals(local.get_gene_expression(genes))
    # config.json went up last.
    puts = [r for r in s3["moto"].requests() if r.startswith("PUT") and "converted.slaf" in r]
    assert puts[-1] == f"PUT /{BUCKET}/converted.slaf/config.json"
    with pytest.raises(ValueError, match="already exists; pass overwrite=True"):
        convert(s3["root"] / "src.h5ad", uri, storage_options=options)
    # Replacing in place could lose the old dataset if the upload failed: refused for now.
    before = len(s3["moto"].requests())
    with pytest.raises(ValueError, match="replacing a dataset on object storage is not supported"):
        convert(s3["root"] / "src.h5ad", uri, storage_options=options, overwrite=True)
    assert not any(r.startswith(("PUT", "DELETE")) for r in s3["moto"].requests()[before:])
    assert SLAFArray(uri, storage_options=options).shape == local.shape
    assert _staging_folders() == []


def test_a_failed_conversion_to_s3_leaves_nothing(s3: dict) -> None:
    bad = ad.read_h5ad(s3["root"] / "src.h5ad")[:100].copy()
    bad.X = bad.X.toarray()
    bad.X[60, 3] = np.nan  # refused (allow_nonfinite=False) after the first cells are written
    bad.write_h5ad(s3["root"] / "bad.h5ad")
    uri = f"s3://{BUCKET}/failed.slaf"
    with pytest.raises(ValueError, match="NaN"):
        convert(s3["root"] / "bad.h5ad", uri, storage_options=s3["moto"].options, chunk_size=50)
    assert _keys(s3, "failed.slaf/") == []
    assert _staging_folders() == []
    with pytest.raises(FileNotFoundError):
        SLAFArray(uri, storage_options=s3["moto"].options)
    # A bucket that does not exist: refused before anything is written, naming the URI.
    with pytest.raises(OSError, match=r"s3://no-such-bucket/x\.slaf"):
        convert(
            s3["root"] / "bad.h5ad",
            "s3://no-such-bucket/x.slaf",
            storage_options=s3["moto"].options,
        )
    assert _staging_folders() == []


def test_cli_converts_to_s3_with_aws_variables(s3: dict) -> None:
    uri = f"s3://{BUCKET}/cli.slaf"
    env = {**os.environ, **s3["moto"].environment}
    done = subprocess.run(
        [sys.executable, "-m", "slaf.cli", "convert", str(s3["root"] / "src.h5ad"), uri],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {uri}"
    assert SLAFArray(uri, storage_options=s3["moto"].options).shape == (N_CELLS, 60)


def test_an_open_and_a_1000_cell_read_make_few_requests(s3: dict) -> None:
    moto = s3["moto"]
    before = len(moto.requests())
    data = SLAFArray(s3["uri"], storage_options=moto.options)
    opened = moto.requests()[before:]
    # config.json, then each table's manifest (Lance sizes it, then reads it).
    assert opened[0] == f"GET /{BUCKET}/d.slaf/config.json"
    assert len(opened) == 7, opened
    cells = np.sort(np.random.default_rng(1).choice(N_CELLS, 1000, replace=False))
    before = len(moto.requests())
    x = data.get_submatrix(cells, format="csr")
    read = moto.requests()[before:]
    assert x.shape[0] == 1000
    print(f"open: {len(opened)} requests; 1,000 random cells: {len(read)} requests")
    # A block of consecutive cells (as a loader window or X's blocks read them) goes through
    # merged reads: a handful of requests.
    before = len(moto.requests())
    block = data.get_submatrix(slice(0, N_CELLS), format="csr")
    assert (block != SLAFArray(s3["local"]).get_submatrix(slice(0, N_CELLS), format="csr")).nnz == 0
    assert len(moto.requests()[before:]) <= 6, moto.requests()[before:]
    # Coalesced ranges, not one request per cell.
    assert len(read) <= 40, read
    assert all(r.startswith("GET") for r in read)
