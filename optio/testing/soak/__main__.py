"""``python -m optio.testing.soak [--minutes N] [--seed S]``: exit 0 when every check passed."""

from __future__ import annotations

import argparse
from pathlib import Path

from optio.testing.soak.run import MINUTES, RATE, SEED, run_soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optio.testing.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=MINUTES, help="length of the run")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the jobs and the chaos")
    parser.add_argument("--rate", type=float, default=RATE, help="y, jobs per minute")
    parser.add_argument("--out", type=Path, help="where to write the report (artifacts/)")
    args = parser.parse_args(argv)
    kwargs = {"out": args.out} if args.out else {}
    result = run_soak(args.minutes, args.seed, y=args.rate, **kwargs)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
