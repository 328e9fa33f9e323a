"""The TFX DAG built from a RunConfig: its nodes and the code digests that keep
TFX's cache honest.
"""
