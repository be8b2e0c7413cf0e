"""slafdb compatibility: keyword arguments that only tuned slafdb's internals."""

from __future__ import annotations

import warnings
from typing import Any

_warned: set[tuple[str, str]] = set()


def ignore_tuning(where: str, **kwargs: Any) -> None:
    """Warn once per call site and argument that a slafdb tuning argument has no effect here.

    Parameters
    ----------
    where
        The function the arguments were given to, for the message.
    **kwargs
        The arguments as given; ``None`` means "not given" and is ignored silently.

    Examples
    --------
    >>> ignore_tuning("SLAFArray", cache_dir=None)     # not given: no warning
    """
    for name, value in kwargs.items():
        if value is None or (where, name) in _warned:
            continue
        _warned.add((where, name))
        warnings.warn(
            f"{where}: {name}= tunes slafdb's internals and has no effect here; ignored",
            UserWarning,
            stacklevel=3,
        )
