"""``python -m benchmarks [options]``: the matrix; ``python -m benchmarks NAME|all [options]``: one or all.

python -m benchmarks                      # the matrix: inputs x targets x paths (see benchmarks/matrix.py)
python -m benchmarks --quick              # the matrix's quick version (under 5 minutes on 2 cores)
python -m benchmarks --long               # with the generated 2- and 10-minute inputs (hours)
python -m benchmarks --list               # the benchmarks
python -m benchmarks target_size --quick  # the same as python -m benchmarks.target_size --quick
python -m benchmarks all --quick          # every benchmark, one after the other

Matrix options: --quick, --long, --out DIR, --repeat N, --shares S..., --preset P, --long-preset P,
--cloud-url URL, --clips NAME..., --no-clips, --generated NAME..., --paths PATH..., --render JSON
(python -m benchmarks matrix --help).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from . import BENCHMARKS


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "--list"):
        print(__doc__.strip())
        print("\nbenchmarks: " + ", ".join(BENCHMARKS))
        return 0
    if not args or args[0].startswith("-"):
        args = ["matrix", *args]  # options alone: the matrix
    name, rest = args[0], args[1:]
    names = list(BENCHMARKS) if name == "all" else [name]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    status = 0
    for n in names:
        status = max(status, importlib.import_module(BENCHMARKS[n]).main(rest))
    return status


if __name__ == "__main__":
    sys.exit(main())
