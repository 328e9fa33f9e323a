"""MovieLensExampleGen: the component (executor.py reads the files)."""
from tfx.dsl.components.base import executor_spec

from components.example_gen import component as base_component
from components.example_gen.movielens import executor


class MovieLensExampleGen(base_component.RawExampleGen):
  """ExampleGen for the raw MovieLens formats (ML-1M, ML-100K, CSV family).

  Outputs Examples with the single split `ratings`: every rating joined with
  its movie's title, genres and year and, where the data set has them, the
  user's gender, age, occupation and zip code.
  """

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
  SPLIT = executor.SPLIT
