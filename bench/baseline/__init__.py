"""A bare DRF endpoint used as the framework's ceiling in the API benchmarks (bench only)."""
