"""The ``slaf`` command line: ``convert``, ``append``, ``index`` and ``info``.

User mistakes end with a one-line ``slaf: error: ...`` on stderr and exit status 1 (2 for
bad arguments); never a traceback. The exit status says whether the write happened: 0 only
when it did (even if Ctrl-C arrived after its commit), non-zero only when nothing changed.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from typing import NoReturn


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"slaf: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


_NONFINITE = "store NaN/inf values of X (with a warning) instead of refusing the input"
_NO_GENE_INDEX = (
    "skip the gene-major table and axis statistics (faster write, slower gene-centric reads; "
    "`slaf index PATH` builds them later)"
)


def _parser() -> argparse.ArgumentParser:
    from slaf.convert import DEFAULT_CHUNK_SIZE, FORMATS

    parser = _Parser(prog="slaf", description="Sparse Lazy Array Format tools.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    convert = commands.add_parser("convert", help="convert h5ad / 10x inputs into a dataset")
    convert.add_argument("paths", nargs="+", metavar="IN... OUT", help="inputs, then the output")
    convert.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, metavar="N")
    convert.add_argument("--format", choices=FORMATS, default=None)
    convert.add_argument(
        "--overwrite", action="store_true", help="replace an existing output (a SLAF dataset only)"
    )
    convert.add_argument("--quiet", action="store_true", help="no progress line")
    convert.add_argument("--allow-nonfinite", action="store_true", help=_NONFINITE)
    convert.add_argument("--no-gene-index", action="store_true", help=_NO_GENE_INDEX)

    append = commands.add_parser("append", help="append inputs to an existing dataset")
    append.add_argument("paths", nargs="+", metavar="IN... EXISTING")
    append.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, metavar="N")
    append.add_argument("--format", choices=FORMATS, default=None)
    append.add_argument("--quiet", action="store_true", help="no progress line")
    append.add_argument("--allow-nonfinite", action="store_true", help=_NONFINITE)
    append.add_argument("--no-gene-index", action="store_true", help=_NO_GENE_INDEX)

    index = commands.add_parser(
        "index",
        help="build the gene-major table and axis statistics, or (--vectors) a vector index",
    )
    index.add_argument("path")
    index.add_argument(
        "--vectors",
        default=None,
        metavar="SECTION/KEY",
        help="the embedding to index: obsm/KEY or varm/KEY (e.g. obsm/X_scvi)",
    )
    index.add_argument(
        "--index-type", default="IVF_FLAT", choices=["IVF_FLAT", "IVF_SQ", "IVF_PQ", "IVF_HNSW_SQ"]
    )
    index.add_argument("--metric", default="l2", choices=["l2", "cosine", "dot"])
    index.add_argument("--num-partitions", type=int, default=None, metavar="N")
    index.add_argument("--num-sub-vectors", type=int, default=None, metavar="N")
    index.add_argument("--drop", action="store_true", help="drop the index instead")
    index.add_argument("--quiet", action="store_true", help="no progress line")

    info = commands.add_parser("info", help="summarise a dataset")
    info.add_argument("path")
    return parser


def _index(args: argparse.Namespace) -> str:
    from slaf import _native
    from slaf._progress import rows_callback
    from slaf.knn import index_record

    if args.vectors is None:
        vector_only = [
            flag
            for flag, given in [
                ("--drop", args.drop),
                ("--num-partitions", args.num_partitions is not None),
                ("--num-sub-vectors", args.num_sub_vectors is not None),
            ]
            if given
        ]
        if vector_only:
            raise _UsageError(f"{vector_only[0]} needs --vectors SECTION/KEY")
        start = time.perf_counter()
        show = not args.quiet and sys.stderr.isatty()
        _native.NativeWriter.index_gene_major(args.path, rows_callback("gene index", show))
        seconds = time.perf_counter() - start
        return f"indexed {args.path}: gene-major table and axis statistics ({seconds:.1f} s)"
    section, _, key = args.vectors.partition("/")
    if section not in ("obsm", "varm") or not key:
        raise _UsageError(f"--vectors takes obsm/KEY or varm/KEY, not {args.vectors!r}")
    if args.drop:
        _native.drop_vector_index(args.path, section, key)
        return f"dropped the vector index of {section}/{key}"
    built = index_record(
        _native.build_vector_index(
            args.path,
            section,
            key,
            args.index_type,
            args.metric,
            args.num_partitions,
            args.num_sub_vectors,
        )
    )
    kind, metric, partitions = built["index_type"], built["metric"], built["num_partitions"]
    return f"indexed {section}/{key}: {kind}, {metric}, {partitions} partitions"


def _run(args: argparse.Namespace) -> None:
    from slaf.array import SLAFArray
    from slaf.convert import append, convert

    if args.command == "info":
        SLAFArray(args.path).info()
        return
    if args.command == "index":
        print(_index(args))
        return
    if len(args.paths) < 2:
        raise _UsageError(f"{args.command} needs at least one input and a destination")
    *inputs, destination = args.paths
    show = not args.quiet and sys.stderr.isatty()
    if args.command == "convert":
        convert(
            inputs,
            destination,
            input_format=args.format,
            chunk_size=args.chunk_size,
            overwrite=args.overwrite,
            progress=show,
            allow_nonfinite=args.allow_nonfinite,
            gene_index=not args.no_gene_index,
        )
    else:
        append(
            inputs,
            destination,
            input_format=args.format,
            chunk_size=args.chunk_size,
            progress=show,
            allow_nonfinite=args.allow_nonfinite,
            gene_index=not args.no_gene_index,
        )
    print(_done(args))


def _done(args: argparse.Namespace) -> str:
    *inputs, destination = args.paths
    if args.command == "convert":
        return f"wrote {destination}"
    return f"appended {len(inputs)} input(s) to {destination}"


class _UsageError(Exception):
    pass


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``slaf`` command; returns the exit status.

    Parameters
    ----------
    argv
        Arguments without the program name (``sys.argv[1:]`` when omitted).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    warnings.showwarning = lambda message, *_a, **_k: sys.stderr.write(
        f"slaf: warning: {message}\n"
    )
    try:
        _run(args)
    except KeyboardInterrupt as e:
        if getattr(e, "slaf_written", False):
            # Ctrl-C came after the commit: the write is complete, and rerunning would repeat it.
            print(_done(args))
            sys.stderr.write("\nslaf: interrupted after the write had completed\n")
            return 0
        sys.stderr.write("\nslaf: interrupted; nothing was written\n")
        return 130
    except _UsageError as e:
        sys.stderr.write(f"slaf: error: {e}\n")
        return 2
    except Exception as e:  # every failure is reported as one line, never a traceback
        if getattr(e, "slaf_written", False):
            print(_done(args))
            sys.stderr.write(f"slaf: warning: after the write completed: {_one_line(e)}\n")
            return 0
        sys.stderr.write(f"slaf: error: {_one_line(e)}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
