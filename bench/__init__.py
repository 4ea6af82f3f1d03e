"""Benchmark suite (run by hand, never in CI): ``python -m bench --help``."""
