"""Benchmarks and their configs: the encoders on ML-1M (`make
bench-encoders`), the defaults on data sets of other shapes (`make
bench-shapes`), Ali-CCP ingestion at scale (`make bench-aliccp`), and the
latency of a pushed TFLite model.
"""
