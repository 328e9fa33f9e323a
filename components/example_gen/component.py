"""The base component of this project's ExampleGens (executor.py runs it).

Each ExampleGen is a FileBasedExampleGen with its own executor, so TFX's
driver fingerprints the input files (a changed file invalidates the cache)
and resolves the span to ingest when the data directory holds spans
(components/lib/spans.py: the newest, or the one `span` names); subclasses
name their split, the files the driver fingerprints and their own
execution parameters.
"""
from typing import Any, Dict, Optional

from google.protobuf import message
from tfx import types
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.proto import example_gen_pb2
from tfx.proto import range_config_pb2
from tfx.types import component_spec
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.example_gen.executor import (DUPLICATES_POLICY,
                                             GROUP_BUCKET_BYTES,
                                             MAX_MALFORMED_LINES, REPORTS_DIR,
                                             SCHEMA_FILE)
from components.lib import settings
from components.lib import spans


class RawExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
  PARAMETERS = {
      **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
      MAX_MALFORMED_LINES: component_spec.ExecutionParameter(type=int),
      REPORTS_DIR: component_spec.ExecutionParameter(type=str, optional=True),
      SCHEMA_FILE: component_spec.ExecutionParameter(type=str, optional=True),
      DUPLICATES_POLICY: component_spec.ExecutionParameter(type=str,
                                                           optional=True),
      GROUP_BUCKET_BYTES: component_spec.ExecutionParameter(type=int,
                                                            optional=True),
      # Digest of this project's code: a code change invalidates the cache.
      "code_version": component_spec.ExecutionParameter(type=str,
                                                        optional=True),
  }


def executor_properties(component: FileBasedExampleGen) -> Dict[str, Any]:
  """The exec properties TFX hands the component's executor (protos as
  JSON): for running an executor outside a pipeline (tests, benchmarks)."""
  return {k: proto_utils.proto_to_json(v) if isinstance(v, message.Message)
          else v for k, v in component.exec_properties.items()}


class RawExampleGen(FileBasedExampleGen):
  """Base component: subclasses set EXECUTOR_SPEC, SPLIT and INPUT_PATTERN
  (the files under data_dir the driver fingerprints)."""

  SPEC_CLASS = RawExampleGenSpec
  SPLIT = ""
  INPUT_PATTERN = "*"

  def __init__(self, data_dir: str, max_malformed_lines: int = 0,
               code_version: str = "", reports_dir: str = "",
               schema_file: str = "",
               duplicates: str = settings.DUPLICATES_FAIL,
               group_bucket_bytes: int = 0, span: Optional[int] = None,
               **parameters):
    """`reports_dir`: where the ingestion report is kept even when the
    execution fails; `schema_file`: the curated schema whose domains each
    line must keep; `duplicates`, `group_bucket_bytes`: data.duplicates and
    data.group_bucket_bytes (0: Beam's GroupByKey); `span`: the span to
    ingest when data_dir holds spans (None: the newest); `parameters`: the
    subclass's own (SPEC_CLASS) execution parameters."""
    input_config = example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(
            name=self.SPLIT,
            pattern=spans.input_pattern(data_dir, self.INPUT_PATTERN))])
    range_config = None
    if span is not None:
      range_config = range_config_pb2.RangeConfig(
          static_range=range_config_pb2.StaticRange(
              start_span_number=span, end_span_number=span))
    output_config = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name=self.SPLIT,
                                              hash_buckets=1)]))
    # FileBasedExampleGen builds its spec from fixed arguments; build ours the
    # same way with the extra parameters.
    spec = self.SPEC_CLASS(
        input_base=data_dir,
        input_config=input_config,
        output_config=output_config,
        custom_config=None,
        range_config=range_config,
        output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
        output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        examples=types.Channel(type=types.standard_artifacts.Examples),
        code_version=code_version,
        **{MAX_MALFORMED_LINES: max_malformed_lines,
           REPORTS_DIR: reports_dir, SCHEMA_FILE: schema_file,
           DUPLICATES_POLICY: duplicates,
           GROUP_BUCKET_BYTES: group_bucket_bytes}, **parameters)
    super(FileBasedExampleGen, self).__init__(spec=spec)  # pylint: disable=bad-super-call