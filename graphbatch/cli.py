"""Command line: ``graphbatch demo`` and ``graphbatch analyze`` (argument parsing only).

``graphbatch demo`` embeds scikit-learn's bundled digits, runs every sampler of
:func:`graphbatch.evaluation.default_sampler_grid` for one epoch, prints the comparison
table and writes plots and ``report.json`` to an output folder.
``graphbatch analyze --embeddings E.npy [--labels y.npy] --out DIR`` does the same for your
own embeddings. The work is done by :func:`graphbatch.evaluation.report.run_analysis`.

Example:
    >>> from graphbatch.cli import build_parser
    >>> build_parser().parse_args(["demo", "--out", "out"]).batch_size
    64
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

__all__ = ["main", "build_parser"]

DEFAULT_DEMO_OUT = "graphbatch-demo"


def _parse_candidates(text: str) -> list[int | None]:
    out: list[int | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part in ("all", "n", "none"):
            out.append(None)
            continue
        try:
            val = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of ints or 'all', got {text!r}") from None
        if val < 1:
            raise argparse.ArgumentTypeError(f"candidates must be >= 1, got {val}")
        out.append(val)
    return out


def _parse_probs(text: str) -> list[float]:
    out: list[float] = []
    if text.strip() == "":
        return out
    for part in text.split(","):
        try:
            val = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of floats, got {text!r}") from None
        if not 0.0 < val <= 1.0:
            raise argparse.ArgumentTypeError(f"restart probabilities must lie in (0, 1], got {val}")
        out.append(val)
    return out


# --------------------------------------------------------------------------------------------
# argparse
# --------------------------------------------------------------------------------------------
def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, default=64, help="batch size for every sampler (default: 64)")
    p.add_argument("--k", type=int, default=10, help="proximity-graph neighbours per node (default: 10)")
    p.add_argument("--candidates", type=_parse_candidates, default=[50, 200, None],
                   help="comma-separated values of M, the random candidates each node's neighbours are "
                        "picked from; 'all' = every instance (default: 50,200,all)")
    p.add_argument("--restart-probs", type=_parse_probs, default=[0.1, 0.3, 0.6],
                   help="restart probabilities for RWR walk mode (default: 0.1,0.3,0.6)")
    p.add_argument("--ppr-restart-probs", type=_parse_probs, default=[0.3],
                   help="restart probabilities for RWR ppr mode; empty string for none (default: 0.3)")
    p.add_argument("--ppr-candidates", type=_parse_candidates, default=[200],
                   help="values of M for RWR ppr mode (default: 200; ppr planning is slower than walk mode)")
    p.add_argument("--temperature", type=float, default=0.05, help="InfoNCE temperature (default: 0.05)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default: 0)")
    p.add_argument("--device", default="cpu",
                   help="torch device for graph building and metrics, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--samplers", default=None,
                   help="comma-separated sampler families to run: random, knn, cluster, bandwidth, rwr-walk, "
                        "rwr-ppr, rwr-walk-rounds, knn-rounds, knn-capped, metis, or the groups baselines, rwr, "
                        "controls, all (default: all)")
    p.add_argument("--drop-last", action="store_true",
                   help="every sampler drops the short last batch (the epoch scores are pair-weighted either way)")
    p.add_argument("--metric", default="cosine", choices=["cosine", "ip", "euclidean", "tanimoto"],
                   help="similarity of the samplers' graphs; tanimoto (Jaccard) for 0/1 fingerprints. The "
                        "hardness metrics stay cosine (default: cosine)")
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--overwrite", action="store_true",
                   help="write into --out even if it holds files graphbatch did not write (they are kept)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--quiet", action="store_true", help="no progress bar")
    bar.add_argument("--progress", action="store_true",
                     help="a progress bar even when stderr is not a terminal (default: only on a terminal)")


def build_parser() -> argparse.ArgumentParser:
    """The ``graphbatch`` argument parser (subcommands ``demo`` and ``analyze``)."""
    parser = argparse.ArgumentParser(
        prog="graphbatch",
        description="Measure how hard the in-batch negatives of different batch samplers are "
                    "(random, kNN, cluster, bandwidth, RWR on a proximity graph).",
        epilog="Run 'graphbatch demo' to try it on scikit-learn's digits (no download).",
    )
    sub = parser.add_subparsers(dest="command", metavar="{demo,analyze}")
    demo = sub.add_parser(
        "demo", help="compare samplers on scikit-learn's bundled digits",
        description="Embed sklearn's digits (standardised pixels -> PCA(32) -> L2 norm), run every sampler for "
                    "one epoch, print the table, write plots and report.json to --out.")
    demo.add_argument("--out", default=DEFAULT_DEMO_OUT, help=f"output folder (default: ./{DEFAULT_DEMO_OUT})")
    demo.add_argument("--dim", type=int, default=32, help="PCA dimensions of the digits embedding (default: 32)")
    _add_common(demo)
    ana = sub.add_parser(
        "analyze", help="compare samplers on your own embeddings (.npy)",
        description="Run every sampler for one epoch on your embeddings, print the table, write plots and "
                    "report.json to --out.")
    ana.add_argument("--embeddings", required=True,
                     help="(N, d) array: .npy, .npz (FILE.npz:NAME for one of several arrays), .csv/.tsv/.txt "
                          "(numeric, optional header); bool/uint8 fingerprints are read as 0/1")
    ana.add_argument("--labels", default=None,
                     help="optional (N,) labels: .npy, .npz, or a text file with one label per line (strings allowed)")
    ana.add_argument("--out", required=True, help="output folder")
    _add_common(ana)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``graphbatch`` console script and ``python -m graphbatch``.

    Returns the exit status: 0 on success, 1 on an error (one line on stderr, no traceback),
    2 on a usage error (argparse), 130 on Ctrl-C.

    Example:
        >>> main(["analyze", "--embeddings", "no-such-file.npy", "--out", "unused"])  # message on stderr
        1
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from .evaluation.report import CLIError, digits_embeddings, load_array, run_analysis

    previous = _terminate_as_exit()
    t0 = time.perf_counter()
    try:
        if args.command == "demo":
            emb, labels, desc = digits_embeddings(args.dim)
            dataset = {"name": "sklearn digits", "embedding": desc}
            step = "embed"
        else:
            step = "load"
            emb = load_array("--embeddings", args.embeddings)
            labels = load_array("--labels", args.labels, labels=True) if args.labels else None
            dataset = {"name": os.path.basename(args.embeddings), "embedding": "user-provided",
                       "embeddings_path": os.path.abspath(args.embeddings),
                       "labels_path": os.path.abspath(args.labels) if args.labels else None}
        run_analysis(emb, labels, out=args.out, batch_size=args.batch_size, k=args.k, candidates=args.candidates,
                     restart_probs=args.restart_probs, ppr_restart_probs=args.ppr_restart_probs,
                     ppr_candidates=args.ppr_candidates,
                     temperature=args.temperature, seed=args.seed, plots=not args.no_plots,
                     progress=False if args.quiet else (True if args.progress else None),
                     overwrite=args.overwrite, dataset=dataset,
                     command=list(argv) if argv is not None else sys.argv[1:], device=args.device,
                     samplers=args.samplers.split(",") if args.samplers else None, drop_last=args.drop_last,
                     metric=args.metric, timings={step: time.perf_counter() - t0})
    except KeyboardInterrupt:
        print("graphbatch: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, OSError, RuntimeError, ImportError) as exc:
        print(f"graphbatch: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _terminate_as_exit():
    """Make SIGTERM unwind like Ctrl-C (so a half-written output folder is removed); returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        print("graphbatch: terminated", file=sys.stderr)
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, handler)
