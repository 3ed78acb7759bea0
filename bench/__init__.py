"""optio's benchmark suite: ``python -m bench`` (or ``scripts/bench.sh``).

Not part of the tests: it starts its own redis-server on a free loopback port and real web,
worker and beat processes, measures, and writes docs/BENCHMARKS.md and docs/benchmarks.json.
"""
