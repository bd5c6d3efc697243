"""python -m runners run SWEEP.toml [--executor ...]  (the same as `lawfit run`)."""
import argparse
import sys

from .cli import configure_parser, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m runners")
    sub = parser.add_subparsers(dest="command", required=True)
    configure_parser(sub.add_parser("run", help="run or resume a sweep"))
    sys.exit(main(parser.parse_args()))
