"""Regenerating a raw-data schema from data with TFDV.

The committed schemas under schemas/ are curated (domains, optional features,
value ranges); inference is the starting point they were made from.
"""
import os
import tempfile

import apache_beam as beam
import tensorflow_data_validation as tfdv

from components import aliccp_example_gen
from components import aliccp_format
from components import movielens_example_gen
from components import movielens_formats


def infer_schema(data_dir: str, output: str, dataset: str = "movielens") -> str:
  """Ingests data_dir as the pipeline does and writes TFDV's inferred schema."""
  with tempfile.TemporaryDirectory() as tmp:
    prefix = os.path.join(tmp, "examples")
    with beam.Pipeline() as pipeline:
      if dataset == "aliccp":
        read = pipeline | "Read" >> aliccp_example_gen.ReadAliCCP(  # pylint: disable=no-value-for-parameter
            aliccp_format.detect_files(data_dir))
      else:
        read = pipeline | "Read" >> movielens_example_gen.ReadMovieLens(  # pylint: disable=no-value-for-parameter
            movielens_formats.detect_files(data_dir))
      _ = read["examples"] | "Write" >> beam.io.WriteToTFRecord(prefix)
    statistics = tfdv.generate_statistics_from_tfrecord(f"{prefix}*")
  schema = tfdv.infer_schema(statistics)
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  tfdv.write_schema_text(schema, output)
  return output
