"""optio's benchmark suite: ``python -m bench`` (or ``scripts/bench.sh``).

Not part of the tests: it starts its own redis-server on a free loopback port and real web,
worker and beat processes (with the tests' harness, ``optio.testing``), measures, writes
docs/benchmarks.json and fills the tables of docs/BENCHMARKS.md (``bench/report.py``).
"""
