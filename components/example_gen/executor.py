"""The shared executor of this project's ExampleGens for raw data-set files.

The one output split is written as TFX's ExampleGen writes it, minus its
Reshuffle (see `_write_examples`). The executor's Beam job also writes a
summary of what it read and what it reported
(`ingestion.WriteIngestionSummary`); the executor turns that into the
ingestion report beside the examples, custom properties on the Examples
artifact (visible in MLMD), warnings in the log, and fails when more lines
are malformed than tolerated.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

from absl import logging
import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult
import tensorflow as tf
from tfx import types
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.lib import ingestion
from components.lib import layout
from components.lib import spans
from components.lib.schema_domains import SchemaDomains

MAX_MALFORMED_LINES = "max_malformed_lines"
# Where the ingestion report is kept outside the execution's output (which
# TFX removes when the execution fails): <output_dir>/reports.
REPORTS_DIR = "reports_dir"
# The curated schema whose value domains each line is checked against.
SCHEMA_FILE = "schema_file"
# data.duplicates (components/lib/duplicates.py) and data.group_bucket_bytes
# (components/lib/disk_group.py).
DUPLICATES_POLICY = "duplicates"
GROUP_BUCKET_BYTES = "group_bucket_bytes"
REPORT_DIR = "_report_dir"
# A custom property of the Examples: the data directory (input_base) read.
DATA_DIR_PROPERTY = "data_dir"
NAMESPACE = "raw_example_gen"
MADE_COUNTER = "examples_made"
SPILL_DIR = "_spill_dir"


# An Example is one length-delimited field (1, `features`) holding Features,
# whose map entries may come in any number of pieces: serialized Features
# concatenate into their union. Dimension rows (movies, users, Ali-CCP's
# common features) are serialized once each and joined to every interaction
# as bytes, which makes the join several times faster than building a proto
# per interaction.
_EXAMPLE_FEATURES_TAG = b"\x0a"


def _varint(value: int) -> bytes:
  out = bytearray()
  while True:
    low, value = value & 0x7F, value >> 7
    if not value:
      out.append(low)
      return bytes(out)
    out.append(low | 0x80)


def span_directory(exec_properties: Dict[str, Any]) -> str:
  """The directory of the span this execution ingests: the one TFX's driver
  resolved (exec_properties["span"]), the newest when the executor runs
  without the driver, data_dir itself when it is flat."""
  return spans.span_dir(
      exec_properties[standard_component_specs.INPUT_BASE_KEY],
      exec_properties.get(example_gen_utils.SPAN_PROPERTY_NAME))


def schema_domains(exec_properties: Dict[str, Any]
                   ) -> Optional[SchemaDomains]:
  """The domains of the schema the component was given, if any."""
  path = exec_properties.get(SCHEMA_FILE)
  return SchemaDomains.read(path) if path else None


def serialized_example(*features: bytes) -> bytes:
  """A serialized tf.train.Example from serialized Features parts."""
  body = b"".join(features)
  return _EXAMPLE_FEATURES_TAG + _varint(len(body)) + body


class RawExampleGenExecutor(base_example_gen_executor.BaseExampleGenExecutor):
  """Runs the Beam job, then reports and checks what it read.

  Subclasses give the PTransform (GetInputSourceToExamplePTransform, which
  receives the report directory as exec_properties[REPORT_DIR]) and
  `describe`, the data set's own part of the report, with the input
  files under "files".
  """

  def describe(self, exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    raise NotImplementedError

  def _write_examples(self, examples: types.Artifact,
                      exec_properties: Dict[str, Any]) -> PipelineResult:
    """The one split, written as TFX's ExampleGen writes it (gzipped
    TFRecords of tf.Examples) but without its Reshuffle: on the DirectRunner
    a Reshuffle holds every example in memory, and a split of one input
    needs no rebalancing. Returns the finished Beam job."""
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY],
        output_config)
    split = output_config.split_config.splits[0].name
    examples.split_names = artifact_utils.encode_split_names([split])
    to_examples = self.GetInputSourceToExamplePTransform()
    pipeline = self._make_beam_pipeline()
    made = Metrics.counter(NAMESPACE, MADE_COUNTER)

    def count(example):
      made.inc()
      return example

    _ = (pipeline
         | "InputToRecord" >> to_examples(exec_properties, "")  # pylint: disable=no-value-for-parameter
         | "CountMade" >> beam.Map(count)
         | "WriteSplit" >> beam.io.WriteToTFRecord(
             os.path.join(artifact_utils.get_split_uri([examples], split),
                          write_split.DEFAULT_FILE_NAME),
             file_name_suffix=".gz"))
    result = pipeline.run()
    result.wait_until_finish()
    examples_utils.set_payload_format(examples,
                                      example_gen_pb2.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(examples, write_split.to_file_format_str(
        example_gen_pb2.FORMAT_TFRECORDS_GZIP))
    return result

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    examples = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.EXAMPLES_KEY])
    report = self.describe(exec_properties)  # fails early on missing files
    span = exec_properties.get(example_gen_utils.SPAN_PROPERTY_NAME)
    if span is not None:
      report["span"] = span
      # TFX's driver records the span as a custom property only; the span
      # resolver functions downstream (pipeline/dag/pipeline.py
      # spans_in_window) read the Examples type's own `span` property.
      examples.span = int(span)
    for key, value in report.items():
      if isinstance(value, str):  # e.g. the detected format
        examples.set_string_custom_property(key, value)
    examples.set_string_custom_property(
        DATA_DIR_PROPERTY,
        exec_properties[standard_component_specs.INPUT_BASE_KEY])
    logging.info("Reading %s", json.dumps(report))
    report_dir = os.path.join(examples.uri, "_ingestion")
    spill_dir = os.path.join(examples.uri, "_spill")
    result = self._write_examples(
        examples, {**exec_properties, REPORT_DIR: report_dir,
                   SPILL_DIR: spill_dir})
    if tf.io.gfile.exists(spill_dir):
      tf.io.gfile.rmtree(spill_dir)

    summary = ingestion.read_ingestion_summary(report_dir)
    tf.io.gfile.rmtree(report_dir)
    check_all_written(result, summary.examples)
    report["examples"] = summary.examples
    examples.set_int_custom_property("num_examples", summary.examples)
    catalogs = report.get("catalogs", [])
    for kind, reported in summary.reported.items():
      lines = ingestion.root_causes_first(reported.lines, catalogs)
      report[kind] = reported.count
      report[f"{kind}_totals"] = [
          {"file": path, "reason": reason, "lines": count}
          for path, reason, count in reported.totals]
      report[f"{kind}_lines"] = [m.describe() for m in lines]
      examples.set_int_custom_property(kind, reported.count)
      for line in lines[:ingestion.MAX_SHOWN_LINES]:
        logging.warning("%s: %s", kind, line.describe())
    text = json.dumps(report, indent=2)
    with tf.io.gfile.GFile(os.path.join(examples.uri, layout.INGESTION_REPORT),
                           "w") as f:
      f.write(text)
    # A failed execution's output is removed by TFX: the copy outside it is
    # the one the error message points to.
    kept = (os.path.join(exec_properties[REPORTS_DIR], layout.INGESTION_REPORT)
            if exec_properties.get(REPORTS_DIR) else "")
    if kept:
      tf.io.gfile.makedirs(os.path.dirname(kept))
      with tf.io.gfile.GFile(kept, "w") as f:
        f.write(text)
    ingestion.check_malformed(
        summary.reported[ingestion.MALFORMED],
        int(exec_properties.get(MAX_MALFORMED_LINES) or 0),
        "data.max_malformed_lines", catalogs, kept)
    if summary.examples == 0:
      raise ingestion.IngestionError(
          f"no examples could be read from {', '.join(report['files'])}"
          + (f"; the report: {kept}" if kept else ""))


def check_all_written(result: PipelineResult,
                      written: int) -> None:
  """Fails when fewer examples reached the output than the job made.

  Guards against runner bugs that lose elements silently, such as Beam
  2.59's FnApiRunner running a Flatten's consumers before all its producers
  finished (components/lib/disk_group.py): the count of examples made is a
  metric of the producing stage, the count written comes from the output's
  own branch of the job.
  """
  made = sum(c.committed for c in result.metrics().query(
      MetricsFilter().with_namespace(NAMESPACE).with_name(MADE_COUNTER))[
          "counters"])
  if made != written:
    raise ingestion.IngestionError(
        f"the Beam job made {made} examples but {written} reached the output: "
        "the runner lost elements; no examples are published")
