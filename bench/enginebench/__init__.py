"""Helpers for bench/engine_bench.py: data set, measurement, tool drivers, report."""
