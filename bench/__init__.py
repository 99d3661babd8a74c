"""Benchmarks: each `bench/<name>.py` has a `main(argv)` that prints a markdown table and writes
it to `bench/out/<name>.md`. `python -m bench` runs them all (`make bench`)."""
