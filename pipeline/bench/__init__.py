"""Benchmarks (`make bench`, `make bench-aliccp`) and their configs; latency of
a pushed TFLite model.
"""
