"""AliCCPExampleGen: the component (executor.py reads and joins the files)."""
from tfx.dsl.components.base import executor_spec
from tfx.types import component_spec

from components.example_gen import component as base_component
from components.example_gen.aliccp import executor


class AliCCPExampleGenSpec(base_component.RawExampleGenSpec):
  PARAMETERS = {
      **base_component.RawExampleGenSpec.PARAMETERS,
      executor.GROUP_BUCKET_BYTES: component_spec.ExecutionParameter(type=int),
  }


class AliCCPExampleGen(base_component.RawExampleGen):
  """ExampleGen for the raw Ali-CCP format: the split `impressions`."""

  SPEC_CLASS = AliCCPExampleGenSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
  SPLIT = executor.SPLIT
  INPUT_PATTERN = "*/*.csv"

  def __init__(self, data_dir: str, group_bucket_bytes: int,
               max_malformed_lines: int = 0, code_version: str = "",
               reports_dir: str = "", schema_file: str = ""):
    super().__init__(data_dir, max_malformed_lines, code_version, reports_dir,
                     schema_file,
                     **{executor.GROUP_BUCKET_BYTES: group_bucket_bytes})
