"""AliCCPExampleGen: the component (executor.py reads and joins the files)."""
from tfx.dsl.components.base import executor_spec

from components.example_gen import component as base_component
from components.example_gen.aliccp import executor


class AliCCPExampleGen(base_component.RawExampleGen):
  """ExampleGen for the raw Ali-CCP format: the split `impressions`."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
  SPLIT = executor.SPLIT
  INPUT_PATTERN = "*/*.csv"
