"""Benchmarks: figures measured on this machine, each against a baseline in the same run."""
