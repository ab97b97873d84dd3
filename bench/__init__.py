"""Benchmarks: a load harness reused by every room's benchmark script."""
