"""Progress bars for long jobs (tqdm on stderr), shown only when asked for.

The core reports ``(done, total)``; this draws it. ``slaf convert``/``append`` count cells,
the gene-major build at their commit and ``slaf index`` count rows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def bar(total: int, unit: str, enabled: bool, description: str = "") -> Any:
    """A tqdm bar on stderr (done, rate, time left); a disabled one draws nothing.

    Examples
    --------
    >>> b = bar(10, " cells", enabled=False)
    >>> b.update(10); b.close()
    """
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit=unit,
        unit_scale=True,
        disable=not enabled,
        file=sys.stderr,
        desc=description or None,
    )


def rows_callback(description: str, enabled: bool) -> Callable[[int, int], None] | None:
    """A ``(done, total)`` callback for the core that draws a bar of rows, or None when
    disabled (the core then reports nothing).

    Examples
    --------
    >>> rows_callback("gene index", enabled=False) is None
    True
    """
    if not enabled:
        return None
    state: dict[str, Any] = {}

    def report(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = bar(total, " rows", True, description)
        shown = state["bar"]
        shown.update(done - shown.n)
        if done >= total:
            shown.close()

    return report
