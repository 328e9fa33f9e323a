"""TwoStageEvaluator: the component (executor.py evaluates)."""
import json
from typing import Sequence

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components.artifacts import TwoStageEvaluation
from components.two_stage_evaluator import executor


class TwoStageEvaluatorSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      # JSON list of the retrieval top-N sizes re-ordered.
      executor.CANDIDATES: component_spec.ExecutionParameter(type=str),
      # Digest of this project's code: a code change invalidates the cache.
      "code_version": component_spec.ExecutionParameter(type=str,
                                                        optional=True),
  }
  INPUTS = {
      "examples": component_spec.ChannelParameter(
          type=standard_artifacts.Examples),
      "model": component_spec.ChannelParameter(type=standard_artifacts.Model),
      "rating_model": component_spec.ChannelParameter(
          type=standard_artifacts.Model),
  }
  OUTPUTS = {
      "evaluation": component_spec.ChannelParameter(type=TwoStageEvaluation),
  }


class TwoStageEvaluator(base_component.BaseComponent):
  """Evaluates retrieval (`model`) re-ranked by `rating_model` on the test
  split of `examples`."""

  SPEC_CLASS = TwoStageEvaluatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel, model: types.BaseChannel,
               rating_model: types.BaseChannel, candidates: Sequence[int],
               code_version: str = ""):
    super().__init__(spec=TwoStageEvaluatorSpec(
        examples=examples, model=model, rating_model=rating_model,
        code_version=code_version,
        **{executor.CANDIDATES: json.dumps(list(candidates))},
        evaluation=types.Channel(type=TwoStageEvaluation)))
