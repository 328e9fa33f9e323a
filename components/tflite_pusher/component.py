"""TFLitePusher: the component (executor.py assembles and publishes the
bundle)."""
import json
from typing import Dict, Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components.artifacts import ItemCatalog
from components.tflite_pusher import executor


class TFLitePusherSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      executor.PUSH_DIR: component_spec.ExecutionParameter(type=str),
      # JSON {name in metadata.json: evaluation output}; empty: retrieval's.
      executor.METRIC_OUTPUTS: component_spec.ExecutionParameter(
          type=str, optional=True),
      # Largest HR@10 drop of model.tflite from the SavedModel (with examples).
      executor.MAX_TFLITE_DROP: component_spec.ExecutionParameter(
          type=float, optional=True),
      # Digest of this project's code: a code change invalidates the cache.
      "code_version": component_spec.ExecutionParameter(type=str,
                                                        optional=True),
  }
  INPUTS = {
      "model": component_spec.ChannelParameter(type=standard_artifacts.Model),
      "model_blessing": component_spec.ChannelParameter(
          type=standard_artifacts.ModelBlessing),
      "evaluation": component_spec.ChannelParameter(
          type=standard_artifacts.ModelEvaluation, optional=True),
      "catalog": component_spec.ChannelParameter(type=ItemCatalog,
                                                 optional=True),
      # The session examples: model.tflite is evaluated on their test split.
      "examples": component_spec.ChannelParameter(
          type=standard_artifacts.Examples, optional=True),
      # A ranker's: the retrieval stage's push of the model it follows.
      "retrieval_push": component_spec.ChannelParameter(
          type=standard_artifacts.PushedModel, optional=True),
  }
  OUTPUTS = {
      "pushed_model": component_spec.ChannelParameter(
          type=standard_artifacts.PushedModel),
  }


class TFLitePusher(base_component.BaseComponent):
  """Evaluates model.tflite (given `examples`; a ranker's chained after the
  retrieval file of `retrieval_push`), then pushes it with the SavedModel
  and metadata.json when blessed and the file holds up."""

  SPEC_CLASS = TFLitePusherSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
               push_dir: str,
               evaluation: Optional[types.BaseChannel] = None,
               catalog: Optional[types.BaseChannel] = None,
               code_version: str = "",
               metric_outputs: Optional[Dict[str, str]] = None,
               examples: Optional[types.BaseChannel] = None,
               max_tflite_drop: float = 0.0,
               retrieval_push: Optional[types.BaseChannel] = None):
    super().__init__(spec=TFLitePusherSpec(
        model=model, model_blessing=model_blessing, evaluation=evaluation,
        catalog=catalog, examples=examples, retrieval_push=retrieval_push,
        code_version=code_version,
        **{executor.PUSH_DIR: push_dir,
           executor.METRIC_OUTPUTS: json.dumps(metric_outputs or {}),
           executor.MAX_TFLITE_DROP: max_tflite_drop},
        pushed_model=types.Channel(type=standard_artifacts.PushedModel)))
