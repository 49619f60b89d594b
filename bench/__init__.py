"""Reproducible benchmarks; results in BENCHMARKS.md. Not part of the product."""
