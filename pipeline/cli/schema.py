"""`recsys infer-schema`: regenerating a raw-data schema from data with TFDV.

The committed schemas under schemas/ are curated (domains, optional features,
value ranges); inference is the starting point they were made from.
"""
import os
import tempfile

from components.lib.session_data import ALICCP, DATASETS, MOVIELENS


def infer_schema(data_dir: str, output: str, dataset: str = MOVIELENS) -> str:
  """Ingests data_dir as the pipeline does and writes TFDV's inferred schema."""
  # pylint: disable=import-outside-toplevel
  import apache_beam as beam
  import tensorflow_data_validation as tfdv
  from components.example_gen.aliccp import executor as aliccp_executor
  from components.example_gen.movielens import executor as movielens_executor
  from components.lib import aliccp_format
  from components.lib import movielens_formats

  with tempfile.TemporaryDirectory() as tmp:
    prefix = os.path.join(tmp, "examples")
    with beam.Pipeline() as pipeline:
      if dataset == ALICCP:
        read = pipeline | "Read" >> aliccp_executor.ReadAliCCP(  # pylint: disable=no-value-for-parameter
            aliccp_format.detect_files(data_dir))
      else:
        read = pipeline | "Read" >> movielens_executor.ReadMovieLens(  # pylint: disable=no-value-for-parameter
            movielens_formats.detect_files(data_dir))
      _ = read["examples"] | "Write" >> beam.io.WriteToTFRecord(prefix)
    statistics = tfdv.generate_statistics_from_tfrecord(f"{prefix}*")
  schema = tfdv.infer_schema(statistics)
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  tfdv.write_schema_text(schema, output)
  return output


def cmd_infer_schema(args) -> int:
  path = infer_schema(os.path.abspath(args.data_dir), args.output,
                      args.dataset)
  print(f"wrote the inferred schema to {path}; compare it with the curated one "
        "(schemas/<dataset>/schema.pbtxt) and carry the curations over")
  return 0


def add_commands(commands) -> None:
  infer = commands.add_parser(
      "infer-schema", help="infer a raw-data schema with TFDV",
      description="Ingest DIR, compute TFDV statistics and write the inferred "
      "schema, the starting point for curating schemas/<dataset>/schema.pbtxt.")
  infer.add_argument("--data-dir", required=True, metavar="DIR")
  infer.add_argument("--output", required=True, metavar="FILE")
  infer.add_argument("--dataset", default=MOVIELENS, choices=list(DATASETS))
  infer.set_defaults(func=cmd_infer_schema)
