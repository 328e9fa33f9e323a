"""Stops a run on data anomalies found by ExampleValidator, and on drift
found by DistributionValidator.

Both validators record their verdict per split or split pair (custom
property `blessed`) and the anomalies themselves (SchemaDiff.pb), but
neither stops the pipeline. The first component after them calls
`raise_on_anomalies` and `raise_on_drift`, so bad data never reaches
training and the error names each anomalous feature.
"""
from __future__ import annotations

import os
from typing import Any, Dict

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.components.distribution_validator import executor as drift_executor
from tfx.components.example_validator import executor as validator_executor
from tfx.dsl.io import fileio
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
    what = f": {info.short_description}" if info.short_description else ""
    lines.append(f"feature {feature!r}{what}: {details}")
  if anomalies.HasField("dataset_anomaly_info"):
    info = anomalies.dataset_anomaly_info
    lines.append(f"dataset: {info.short_description}: {info.description}")
  return lines


def _problems(artifact: types.Artifact, directory: str) -> list:
  """The anomalies of each split (or split pair) not blessed; `directory`:
  where a split's SchemaDiff.pb is, given the split."""
  blessed = artifact.get_json_value_custom_property(
      validator_executor.ARTIFACT_PROPERTY_BLESSED_KEY) or {}
  problems = []
  for split in artifact_utils.decode_split_names(artifact.split_names):
    if blessed.get(split, validator_executor.BLESSED_VALUE) != (
        drift_executor.NOT_BLESSED_VALUE):
      continue
    anomalies = anomalies_pb2.Anomalies()
    anomalies.ParseFromString(io_utils.read_bytes_file(os.path.join(
        directory.format(uri=artifact.uri, split=split),
        validator_executor.DEFAULT_FILE_NAME)))
    problems += [f"[{split}] {line}" for line in describe(anomalies)]
  return problems


def drift_distances(uri: str, split_names: str) -> Dict[str, Dict[str, Any]]:
  """{feature: {measure, distance, bound}}: what DistributionValidator
  measured between the newest span and the previous one (its anomalies
  artifact's uri and encoded split names), within the bounds or not
  (TFDV's drift_skew_info)."""
  found: Dict[str, Dict[str, Any]] = {}
  for split in artifact_utils.decode_split_names(split_names):
    path = os.path.join(uri, f"SplitPair-{split}",
                        validator_executor.DEFAULT_FILE_NAME)
    if not fileio.exists(path):
      continue
    anomalies = anomalies_pb2.Anomalies()
    anomalies.ParseFromString(io_utils.read_bytes_file(path))
    for info in anomalies.drift_skew_info:
      for measured in info.drift_measurements:
        found[".".join(info.path.step)] = {
            "measure": anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(
                measured.type),
            "distance": measured.value, "bound": measured.threshold}
  return found


def raise_on_anomalies(artifact: types.Artifact) -> None:
  """Raises DataValidationError if any validated split has anomalies."""
  problems = _problems(artifact, "{uri}/Split-{split}")
  if problems:
    raise DataValidationError(
        "ExampleValidator found anomalies in the raw data; fix the data or "
        "curate the schema under schemas/:\n  "
        + "\n  ".join(problems))


def raise_on_drift(artifact: types.Artifact) -> None:
  """Raises DataValidationError if the newest span drifted from the
  previous one beyond the curated schema's bounds (DistributionValidator,
  which rubber-stamps a span without a previous one)."""
  problems = _problems(artifact, "{uri}/SplitPair-{split}")
  if problems:
    raise DataValidationError(
        "the newest span's data drifted from the previous span's beyond the "
        "bounds of the curated schema (its drift_comparator fields):\n  "
        + "\n  ".join(problems) + "\n  if the change is real, rerun with "
        "--set data.accept_drift=true")
