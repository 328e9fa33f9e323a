"""Regenerating a raw-data schema from data with TFDV.

The committed schemas under schemas/ are curated (domains, optional features,
value ranges); inference is the starting point they were made from.
"""
import os
import tempfile

import apache_beam as beam
import tensorflow_data_validation as tfdv

from components.movielens_formats import detect_files
from components.movielens_example_gen import ReadMovieLens


def infer_schema(data_dir: str, output: str) -> str:
  """Ingests data_dir as the pipeline does and writes TFDV's inferred schema."""
  files = detect_files(data_dir)
  with tempfile.TemporaryDirectory() as tmp:
    prefix = os.path.join(tmp, "examples")
    with beam.Pipeline() as pipeline:
      read = pipeline | "Read" >> ReadMovieLens(files)  # pylint: disable=no-value-for-parameter
      _ = read["examples"] | "Write" >> beam.io.WriteToTFRecord(prefix)
    statistics = tfdv.generate_statistics_from_tfrecord(f"{prefix}*")
  schema = tfdv.infer_schema(statistics)
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  tfdv.write_schema_text(schema, output)
  return output
