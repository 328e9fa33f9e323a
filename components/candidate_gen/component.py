"""CandidateGen: the component (executor.py proposes the candidates)."""
from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components.candidate_gen import executor


class CandidateGenSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      # How many of retrieval's best items each example gets.
      executor.CANDIDATES_PER_EXAMPLE: component_spec.ExecutionParameter(
          type=int),
      # Digest of this project's code: a code change invalidates the cache.
      "code_version": component_spec.ExecutionParameter(type=str,
                                                        optional=True),
  }
  INPUTS = {
      "examples": component_spec.ChannelParameter(
          type=standard_artifacts.Examples),
      # The retrieval model that is pushed: eval and test candidates.
      "model": component_spec.ChannelParameter(type=standard_artifacts.Model),
      # The retrieval model trained without the ranker's labels: the
      # candidates of the ranker's train examples.
      "holdout_model": component_spec.ChannelParameter(
          type=standard_artifacts.Model),
  }
  OUTPUTS = {
      "candidates": component_spec.ChannelParameter(
          type=standard_artifacts.Examples),
  }


class CandidateGen(base_component.BaseComponent):
  """Retrieval's top N for the ranker's train, eval and test examples."""

  SPEC_CLASS = CandidateGenSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
               holdout_model: types.BaseChannel, candidates: int,
               code_version: str = ""):
    super().__init__(spec=CandidateGenSpec(
        examples=examples, model=model, holdout_model=holdout_model,
        code_version=code_version,
        **{executor.CANDIDATES_PER_EXAMPLE: candidates},
        candidates=types.Channel(type=standard_artifacts.Examples)))
