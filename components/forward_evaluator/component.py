"""ForwardEvaluator: the component (executor.py checks and evaluates)."""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import json_utils
import tensorflow_model_analysis as tfma

from components.forward_evaluator import executor


class ForwardEvaluatorSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      specs.EVAL_CONFIG_KEY: component_spec.ExecutionParameter(
          type=tfma.EvalConfig),
      # Digest of this project's code: a code change invalidates the cache.
      "code_version": component_spec.ExecutionParameter(type=str,
                                                        optional=True),
  }
  INPUTS = {
      specs.EXAMPLES_KEY: component_spec.ChannelParameter(
          type=standard_artifacts.Examples),
      # The latest blessed model when this run started (none on a first run).
      specs.MODEL_KEY: component_spec.ChannelParameter(
          type=standard_artifacts.Model, optional=True),
  }
  OUTPUTS = {
      specs.EVALUATION_KEY: component_spec.ChannelParameter(
          type=standard_artifacts.ModelEvaluation),
  }


class ForwardEvaluator(base_beam_component.BaseBeamComponent):
  """Evaluates `model` on the forward split of `examples` (the newest
  span's first interaction per user) when the model was trained on earlier
  spans only; otherwise records why not."""

  SPEC_CLASS = ForwardEvaluatorSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel,
               model: Optional[types.BaseChannel],
               eval_config: tfma.EvalConfig, code_version: str = ""):
    super().__init__(spec=ForwardEvaluatorSpec(
        examples=examples, model=model, eval_config=eval_config,
        code_version=code_version,
        evaluation=types.Channel(type=standard_artifacts.ModelEvaluation)))
