"""Stops a run on data anomalies found by ExampleValidator.

ExampleValidator records its verdict per split (custom property `blessed`) and
the anomalies themselves (SchemaDiff.pb), but it does not stop the pipeline.
The first component after it calls `raise_on_anomalies`, so bad data never
reaches training and the error names each anomalous feature.
"""
from __future__ import annotations

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.components.example_validator import executor as validator_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.lib.errors import InputError


class DataValidationError(InputError):
  """The raw data does not match the curated schema, or leaves nothing to
  train on."""


def describe(anomalies: anomalies_pb2.Anomalies) -> list:
  """One line per anomaly: feature, short description, details."""
  lines = []
  for feature, info in sorted(anomalies.anomaly_info.items()):
    details = "; ".join(r.description for r in info.reason) or info.description
    lines.append(f"feature {feature!r}: {info.short_description}: {details}")
  if anomalies.HasField("dataset_anomaly_info"):
    info = anomalies.dataset_anomaly_info
    lines.append(f"dataset: {info.short_description}: {info.description}")
  return lines


def raise_on_anomalies(artifact: types.Artifact) -> None:
  """Raises DataValidationError if any validated split has anomalies."""
  blessed = artifact.get_json_value_custom_property(
      validator_executor.ARTIFACT_PROPERTY_BLESSED_KEY) or {}
  problems = []
  for split in artifact_utils.decode_split_names(artifact.split_names):
    if blessed.get(split, validator_executor.BLESSED_VALUE):
      continue
    path = os.path.join(artifact_utils.get_split_uri([artifact], split),
                        validator_executor.DEFAULT_FILE_NAME)
    anomalies = anomalies_pb2.Anomalies()
    anomalies.ParseFromString(io_utils.read_bytes_file(path))
    problems += [f"[{split}] {line}" for line in describe(anomalies)]
  if problems:
    raise DataValidationError(
        "ExampleValidator found anomalies in the raw data; fix the data or "
        "curate the schema under schemas/:\n  "
        + "\n  ".join(problems))
