"""`lawfit run SWEEP.toml` (and `python -m runners run SWEEP.toml`): run or resume a sweep."""
from __future__ import annotations

import argparse
import sys

from .sweep.executor import EXECUTORS

__all__ = ["configure_parser", "main"]


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of `run SWEEP.toml` to `parser` (no heavy import: used by `lawfit --help`).

    Parameters
    ----------
    parser
        The (sub)parser of the `run` command.

    Returns
    -------
    argparse.ArgumentParser
        The same parser.
    """
    parser.add_argument("sweep", help="sweep TOML file (grid over models, checkpoints, data sizes, seeds, methods)")
    parser.add_argument("--executor", choices=list(EXECUTORS), default="local",
                        help="; ".join(f"{k}: {e.help}" for k, e in EXECUTORS.items()))
    parser.add_argument("--out", default=None, help="dataset directory (default: [sweep] out in the TOML)")
    parser.add_argument("--jobs", type=int, default=None, help="local executor: parallel worker processes")
    parser.add_argument("--threads-per-job", type=int, default=None,
                        help="local executor: cores / XLA threads per worker (default: cores // jobs)")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default=None,
                        help="what the runs compute on (default: [sweep] device in the TOML, else auto: "
                             "a GPU if jax sees one); gpu fails with exit 2 where there is none")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the whole configuration for the devices, print the size of the grid "
                             "and what is left; run nothing")
    return parser


def main(args: argparse.Namespace) -> int:
    """Run the sweep of parsed `args`; returns the exit status (0, 1 failed runs, 2 bad input,
    130 / 143 stopped by SIGINT / SIGTERM)."""
    prog = "lawfit run"
    import importlib.util
    need = ("pydantic",) + (() if args.dry_run else ("flax", "optax", "orbax.checkpoint", "sacrebleu"))
    missing = [m for m in need if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        print(f"{prog}: error: the runners need {', '.join(missing)}: pip install 'lawfit[runners]'", file=sys.stderr)
        return 2
    from .rows import CorruptRunFile
    from .sweep import SweepError, SweepInterrupted, run_sweep
    for opt in ("jobs", "threads_per_job"):
        if getattr(args, opt) is not None and getattr(args, opt) < 1:
            print(f"{prog}: error: --{opt.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    try:
        out = run_sweep(args.sweep, executor=args.executor, out=args.out, jobs=args.jobs,
                        threads_per_job=args.threads_per_job, dry_run=args.dry_run, device=args.device)
    except (SweepError, CorruptRunFile) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except SweepInterrupted as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return e.code
    except RuntimeError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished runs are kept, re-run to resume", file=sys.stderr)
        return 130
    print(out)
    return 0
