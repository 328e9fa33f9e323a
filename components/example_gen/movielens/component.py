"""MovieLensExampleGen: the component (executor.py reads the files)."""
from typing import Optional

from tfx.dsl.components.base import executor_spec
from tfx.types import component_spec

from components.example_gen import component as base_component
from components.example_gen.movielens import executor
from components.lib import settings


class MovieLensExampleGenSpec(base_component.RawExampleGenSpec):
  PARAMETERS = {
      **base_component.RawExampleGenSpec.PARAMETERS,
      executor.LAYOUT: component_spec.ExecutionParameter(type=str,
                                                         optional=True),
      executor.ENCODING: component_spec.ExecutionParameter(type=str,
                                                           optional=True),
  }


class MovieLensExampleGen(base_component.RawExampleGen):
  """ExampleGen for the raw MovieLens formats (ML-1M, ML-100K, CSV family).

  Outputs Examples with the single split `ratings`: every rating joined with
  its movie's title, genres and year and, where the data set has them, the
  user's gender, age, occupation and zip code.
  """

  SPEC_CLASS = MovieLensExampleGenSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
  SPLIT = executor.SPLIT

  def __init__(self, data_dir: str, max_malformed_lines: int = 0,
               code_version: str = "", reports_dir: str = "",
               schema_file: str = "", layout: str = "", encoding: str = "",
               duplicates: str = settings.DUPLICATES_FAIL,
               group_bucket_bytes: int = 0, span: Optional[int] = None):
    """`layout`, `encoding`: data.layout and data.encoding (empty: detected
    from the files); the rest as RawExampleGen's."""
    super().__init__(data_dir, max_malformed_lines, code_version, reports_dir,
                     schema_file, duplicates, group_bucket_bytes, span,
                     **{executor.LAYOUT: layout, executor.ENCODING: encoding})
