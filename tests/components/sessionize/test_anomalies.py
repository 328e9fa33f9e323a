"""ExampleValidator's verdict stops a run, naming each anomalous feature."""
import os

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components.sessionize.anomalies import DataValidationError
from components.sessionize.anomalies import raise_on_anomalies


def anomalies_artifact(tmp_path, blessed):
  artifact = standard_artifacts.ExampleAnomalies()
  artifact.uri = str(tmp_path / "anomalies")
  artifact.split_names = artifact_utils.encode_split_names(["ratings"])
  artifact.set_json_value_custom_property("blessed", {"ratings": blessed})
  anomalies = anomalies_pb2.Anomalies()
  info = anomalies.anomaly_info["rating"]
  info.short_description = "Out-of-range values"
  info.reason.add(description="Unexpectedly high value: 7>5")
  split_dir = os.path.join(artifact.uri, "Split-ratings")
  os.makedirs(split_dir)
  io_utils.write_bytes_file(os.path.join(split_dir, "SchemaDiff.pb"),
                            anomalies.SerializeToString())
  return artifact


def test_raise_on_anomalies_follows_the_blessing(tmp_path):
  raise_on_anomalies(anomalies_artifact(tmp_path / "ok", 1))
  with pytest.raises(DataValidationError, match="'rating'.*7>5"):
    raise_on_anomalies(anomalies_artifact(tmp_path / "bad", 0))
