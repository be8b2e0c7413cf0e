"""kNN label transfer: each query cell takes the label its nearest reference cells vote for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from slaf.errors import InvalidArgumentError, UnknownNameError

if TYPE_CHECKING:
    from slaf.array import SLAFArray


def transfer_labels(
    data: SLAFArray,
    query_vectors: Any,
    key: str | None = None,
    label: str = "cell_type",
    k: int = 15,
    weighting: Literal["distance", "uniform"] = "distance",
    filter: str | None = None,
    nprobes: int | None = None,
    exact: bool = False,
) -> pd.DataFrame:
    """Label query cells by a vote of their ``k`` nearest cells in ``obsm[key]``.

    The query vectors must come from the model that produced ``obsm[key]`` (e.g. scVI or
    scGPT embeddings of new cells); nothing here trains a model.

    Parameters
    ----------
    data
        The reference dataset.
    query_vectors
        ``(n_queries, d)`` vectors, or one 1-D vector.
    key
        The obsm embedding; may be left out when there is only one.
    label
        The obs column holding the reference labels. Cells with a missing label do not vote.
    k
        Neighbours that vote.
    weighting
        ``"distance"``: each vote weighs ``1 / (distance + eps)`` (the Euclidean distance
        for l2), so nearer cells count more; ``"uniform"``: one vote each.
    filter
        A SQL predicate on obs columns restricting the reference cells.
    nprobes, exact
        Passed to :meth:`~slaf.SLAFArray.nearest_cells`.

    Returns
    -------
    pandas.DataFrame
        One row per query: ``label`` (the winning label; missing when no neighbour had one),
        ``confidence`` (the winner's share of the vote, 0 to 1) and ``n_votes``.

    Raises
    ------
    slaf.errors.UnknownNameError
        (a KeyError) when ``label`` is not an obs column.

    Examples
    --------
    >>> import slaf
    >>> data = slaf.SLAFArray("atlas.slaf")                                    # doctest: +SKIP
    >>> out = slaf.tl.transfer_labels(data, new_cells, key="X_scvi", label="cell_type")
    ...                                                                        # doctest: +SKIP
    >>> out.head()                                                             # doctest: +SKIP
      cell_type  confidence  n_votes
    0    B cell    1.000000       15
    """
    if weighting not in ("distance", "uniform"):
        raise InvalidArgumentError(f"weighting must be 'distance' or 'uniform', not {weighting!r}")
    if label not in data.obs.columns:
        raise UnknownNameError(f"no obs column {label!r} to transfer")
    from slaf import knn

    key, width = knn.resolve_key(data, key, "obsm")
    queries = knn.query_matrix(query_vectors, width, f"obsm[{key!r}]")
    n_queries = queries.shape[0]
    hits = data.nearest_cells(queries, k=k, key=key, filter=filter, nprobes=nprobes, exact=exact)
    labels = data.obs[label].to_pandas().astype(object)
    votes = pd.DataFrame(
        {
            "query": hits["query"].to_numpy(),
            "label": labels.to_numpy()[hits["cell_integer_id"].to_numpy()],
            "distance": hits["distance"].to_numpy().astype(np.float64),
        }
    )
    votes = votes[votes["label"].notna()]
    if weighting == "uniform":
        votes["weight"] = 1.0
    else:
        distance = votes["distance"].clip(lower=0)
        # l2 distances are squared: weigh by the Euclidean distance. The search used the
        # index's metric where the key has an index, l2 otherwise.
        indexes = data.vector_indexes()
        is_l2 = not any(i["key"] == key and i["metric"] != "l2" for i in indexes)
        votes["weight"] = 1.0 / ((np.sqrt(distance) if is_l2 else distance) + 1e-6)
    per_label = votes.groupby(["query", "label"], sort=False)["weight"].sum().reset_index()
    total = per_label.groupby("query")["weight"].sum()
    best = per_label.sort_values(
        ["query", "weight"], ascending=[True, False], kind="stable"
    ).drop_duplicates("query")
    out = pd.DataFrame(index=pd.RangeIndex(n_queries))
    out[label] = pd.Series(best["label"].to_numpy(), index=best["query"].to_numpy())
    out["confidence"] = pd.Series(
        (best["weight"].to_numpy() / total.loc[best["query"]].to_numpy()),
        index=best["query"].to_numpy(),
    ).reindex(out.index, fill_value=0.0)
    out["n_votes"] = votes.groupby("query").size().reindex(out.index, fill_value=0).astype(int)
    return out
