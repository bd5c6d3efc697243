"""`lawfit run SWEEP.toml` (and `python -m runners run SWEEP.toml`): run or resume a sweep."""
from __future__ import annotations

import argparse
import sys


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("sweep", help="sweep TOML file (grid over models, checkpoints, data sizes, seeds, methods)")
    parser.add_argument("--executor", choices=["local", "slurm", "submitit-local"], default="local",
                        help="local worker processes (default), SLURM through submitit, or submitit's "
                             "local executor (the SLURM code path on this machine)")
    parser.add_argument("--out", default=None, help="dataset directory (default: [sweep] out in the TOML)")
    parser.add_argument("--jobs", type=int, default=None, help="local executor: parallel worker processes")
    parser.add_argument("--threads-per-job", type=int, default=None,
                        help="local executor: cores / XLA threads per worker (default: cores // jobs)")
    parser.add_argument("--dry-run", action="store_true", help="print the size of the grid and what is left; run nothing")
    return parser


def main(args: argparse.Namespace) -> int:
    from .rows import CorruptRunFile
    from .sweep import SweepError, run_sweep
    prog = "lawfit run"
    import importlib.util
    missing = [m for m in ("flax", "optax", "orbax.checkpoint", "sacrebleu") if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing and not args.dry_run:
        print(f"{prog}: error: the runners need {', '.join(missing)}: pip install 'lawfit[runners]'", file=sys.stderr)
        return 2
    if args.jobs is not None and args.jobs < 1:
        print(f"{prog}: error: --jobs must be >= 1", file=sys.stderr)
        return 2
    try:
        out = run_sweep(args.sweep, executor=args.executor, out=args.out, jobs=args.jobs,
                        threads_per_job=args.threads_per_job, dry_run=args.dry_run)
    except (SweepError, CorruptRunFile) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished runs are kept, re-run to resume", file=sys.stderr)
        return 130
    print(out)
    return 0
