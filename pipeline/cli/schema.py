"""`recsys infer-schema`: regenerating a raw-data schema from data with TFDV.

The committed schemas under schemas/ are curated (domains, optional features,
value ranges); inference is the starting point they were made from. The data
is read as the pipeline's ingestion reads it (the same layouts, encodings
and duplicates policy), without the curated domains; what it leaves out is
counted and shown, so that a schema is never inferred from part of the data
without a word.
"""
import os
import tempfile
from typing import Dict, NamedTuple

from components.lib.session_data import ALICCP, DATASETS, MOVIELENS
from components.lib.settings import (DUPLICATES, DUPLICATES_FAIL, ENCODINGS,
                                     MOVIELENS_LAYOUTS)

# Reported lines shown per kind (the counts cover them all).
SHOWN_LINES = 5


class InferredSchema(NamedTuple):
  path: str
  examples: int
  # kind -> (count, the first lines described)
  left_out: Dict[str, tuple]


def infer_schema(data_dir: str, output: str, dataset: str = MOVIELENS,
                 layout: str = "", encoding: str = "",
                 duplicates: str = DUPLICATES_FAIL) -> InferredSchema:
  """Ingests data_dir (its newest span when it holds spans) as the pipeline
  does and writes TFDV's inferred schema; `layout`, `encoding` and
  `duplicates` as data.layout, data.encoding and data.duplicates."""
  # pylint: disable=import-outside-toplevel
  import apache_beam as beam
  import tensorflow_data_validation as tfdv
  from components.example_gen.aliccp import executor as aliccp_executor
  from components.example_gen.movielens import executor as movielens_executor
  from components.lib import aliccp_format
  from components.lib import ingestion
  from components.lib import movielens_formats
  from components.lib import spans

  with tempfile.TemporaryDirectory() as tmp:
    prefix = os.path.join(tmp, "examples")
    with beam.Pipeline() as pipeline:
      if dataset == ALICCP:
        read = pipeline | "Read" >> aliccp_executor.ReadAliCCP(  # pylint: disable=no-value-for-parameter
            aliccp_format.detect_files(spans.span_dir(data_dir)),
            duplicates_policy=duplicates)
      else:
        read = pipeline | "Read" >> movielens_executor.ReadMovieLens(  # pylint: disable=no-value-for-parameter
            movielens_formats.detect_files(
                spans.span_dir(data_dir), layout, encoding,
                spans.catalog_dirs(data_dir)), duplicates)
      _ = read["examples"] | "Write" >> beam.io.WriteToTFRecord(prefix)
      _ = read | "Summarize" >> ingestion.WriteIngestionSummary(
          os.path.join(tmp, "report"))
    summary = ingestion.read_ingestion_summary(os.path.join(tmp, "report"))
    if summary.examples == 0:
      raise ingestion.IngestionError(
          f"no examples could be read from {data_dir}")
    statistics = tfdv.generate_statistics_from_tfrecord(f"{prefix}*")
  schema = tfdv.infer_schema(statistics)
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  tfdv.write_schema_text(schema, output)
  return InferredSchema(output, summary.examples, {
      kind: (reported.count,
             [m.describe() for m in reported.lines[:SHOWN_LINES]])
      for kind, reported in summary.reported.items() if reported.count})


def cmd_infer_schema(args) -> int:
  inferred = infer_schema(os.path.abspath(args.data_dir), args.output,
                          args.dataset, args.layout, args.encoding,
                          args.duplicates)
  print(f"inferred from {inferred.examples} examples")
  for kind, (count, lines) in sorted(inferred.left_out.items()):
    print(f"left out: {count} line(s), {kind}:")
    for line in lines:
      print(f"  {line}")
    if count > len(lines):
      print(f"  ... and {count - len(lines)} more")
  print(f"wrote the inferred schema to {inferred.path}; compare it with the "
        "curated one (schemas/<dataset>/schema.pbtxt) and carry the "
        "curations over")
  return 0


def add_commands(commands) -> None:
  infer = commands.add_parser(
      "infer-schema", help="infer a raw-data schema with TFDV",
      description="Ingest DIR as the pipeline does (without the curated "
      "schema's domains), compute TFDV statistics and write the inferred "
      "schema, the starting point for curating schemas/<dataset>/schema.pbtxt. "
      "Lines left out are counted and the first shown.")
  infer.add_argument("--data-dir", required=True, metavar="DIR")
  infer.add_argument("--output", required=True, metavar="FILE")
  infer.add_argument("--dataset", default=MOVIELENS, choices=list(DATASETS))
  infer.add_argument("--layout", default="", choices=("",) + MOVIELENS_LAYOUTS,
                     help="MovieLens layout when DIR holds several "
                     "(data.layout)")
  infer.add_argument("--encoding", default="", choices=("",) + ENCODINGS,
                     help="encoding of the MovieLens files (data.encoding)")
  infer.add_argument("--duplicates", default=DUPLICATES_FAIL,
                     choices=DUPLICATES,
                     help="rows given on several lines (data.duplicates): "
                     "fail leaves them all out")
  infer.set_defaults(func=cmd_infer_schema)
