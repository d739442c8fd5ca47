"""Benchmarks: scripts that print tables with peers measured in the same run."""
