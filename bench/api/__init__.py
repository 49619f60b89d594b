"""The storefront API benchmark (run it with bench/api_bench.py), split by what each part does."""
