"""Sessionize: the component (executor.py runs it, sessions.py is how)."""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components.artifacts import ItemCatalog
from components.sessionize import executor


class SessionizeSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      # executor.SessionizeSettings as JSON.
      executor.SETTINGS: component_spec.ExecutionParameter(type=str),
      # Digest of this project's code: a code change invalidates the cache.
      "code_version": component_spec.ExecutionParameter(type=str,
                                                        optional=True),
  }
  INPUTS = {
      "examples": component_spec.ChannelParameter(
          type=standard_artifacts.Examples),
      "anomalies": component_spec.ChannelParameter(
          type=standard_artifacts.ExampleAnomalies, optional=True),
      "drift": component_spec.ChannelParameter(
          type=standard_artifacts.ExampleAnomalies, optional=True),
  }
  OUTPUTS = {
      "sessions": component_spec.ChannelParameter(
          type=standard_artifacts.Examples),
      "schema": component_spec.ChannelParameter(type=standard_artifacts.Schema),
      "catalog": component_spec.ChannelParameter(type=ItemCatalog),
  }


class Sessionize(base_beam_component.BaseBeamComponent):
  """Raw interactions -> `sessions` (train/eval/test next-item examples),
  their `schema` and the item `catalog`.

  `anomalies` (ExampleValidator's output) and `drift` (DistributionValidator's:
  the newest span against the previous one) gate the run: any anomaly stops
  it here, before sessionization and training.
  """

  SPEC_CLASS = SessionizeSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel,
               settings: executor.SessionizeSettings,
               anomalies: Optional[types.BaseChannel] = None,
               code_version: str = "",
               drift: Optional[types.BaseChannel] = None):
    super().__init__(spec=SessionizeSpec(
        examples=examples,
        anomalies=anomalies,
        drift=drift,
        code_version=code_version,
        **{executor.SETTINGS: settings.to_json()},
        **{name: types.Channel(type=p.type)
           for name, p in SessionizeSpec.OUTPUTS.items()}))
