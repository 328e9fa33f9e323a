"""TFLitePusher's executor: a complete versioned bundle assembled in one
step, nothing left behind by a failed push, nothing pushed unblessed."""
import json
import os
import shutil

import pytest
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.artifacts import ItemCatalog
from components.lib import features as F
from components.lib import layout
from components.model.export import signature_names as names
from components.tflite_pusher import executor as pusher
from tests.support.retrieval_model import (CONTEXT, SETTINGS, TOP_K,
                                           serialized_examples)
from tests.support.sessions import GENRE_SLOTS


def _model_artifact(retrieval_export, root) -> str:
  """A copy of the exported Model artifact (Format-Serving, Format-TFLite,
  the training summary and the settings), which a test may break."""
  model_uri = root / "model"
  shutil.copytree(retrieval_export["model_uri"], model_uri)
  return str(model_uri)


def _model_and_blessing(retrieval_export, root, blessed: int):
  """The Model artifact (a copy) and a blessing of it."""
  model = standard_artifacts.Model()
  model.uri = _model_artifact(retrieval_export, root)
  blessing = standard_artifacts.ModelBlessing()
  blessing.set_int_custom_property("blessed", blessed)
  return model, blessing


def _catalog(root) -> ItemCatalog:
  catalog = ItemCatalog()
  catalog.uri = str(root / "catalog")
  os.makedirs(catalog.uri)
  with open(os.path.join(catalog.uri, layout.CATALOG), "w") as f:
    f.write('{"100": {"title": "x", "genres": [], "year": null}}')
  catalog.set_string_custom_property(ItemCatalog.DATASET_PROPERTY,
                                     "movielens")
  return catalog


def test_push_writes_a_complete_versioned_bundle(retrieval_export, tmp_path):
  model_uri = _model_artifact(retrieval_export, tmp_path)
  push_dir = tmp_path / "serving"
  first = pusher.push(model_uri, str(push_dir), _catalog(tmp_path),
                      {"model": {"hit_rate@10": 0.5}})
  second = pusher.push(model_uri, str(push_dir), None, {})
  assert int(os.path.basename(second)) > int(os.path.basename(first))
  assert sorted(os.listdir(first)) == sorted([
      layout.CATALOG, layout.BUNDLE_METADATA, layout.TFLITE_MODEL,
      layout.INPUT_MAPPING, layout.BUNDLE_SAVED_MODEL])
  assert layout.CATALOG not in os.listdir(second)
  with open(os.path.join(first, layout.BUNDLE_METADATA)) as f:
    metadata = json.load(f)
  assert metadata["top_k"] == TOP_K
  assert metadata["signature"] == names.ONDEVICE
  assert metadata["input_mapping"] == layout.INPUT_MAPPING
  # Index inputs at a batch of one; the top K plus the context's own items
  # and PAD/UNKNOWN, which the app drops.
  assert metadata["inputs"][F.CONTEXT_GENRE] == {
      "dtype": "int32", "shape": [1, CONTEXT * GENRE_SLOTS]}
  assert metadata["outputs"][names.TOP_ITEM_INDICES] == {
      "dtype": "int32", "shape": [1, TOP_K + CONTEXT + 2]}
  assert metadata["outputs"][names.TOP_SCORES]["dtype"] == "float32"
  assert metadata["metrics"] == {"model": {"hit_rate@10": 0.5}}
  # The settings that made the model, as its Trainer recorded them, and the
  # data set whose catalog ships beside it.
  assert metadata["config"] == json.loads(SETTINGS.to_json())
  assert metadata["dataset"] == "movielens"
  assert metadata["model_uri"] == model_uri
  assert sorted(os.listdir(push_dir)) == sorted(
      [os.path.basename(first), os.path.basename(second)])


def test_failed_push_leaves_nothing_behind(retrieval_export, tmp_path):
  model_uri = _model_artifact(retrieval_export, tmp_path)
  # A corrupt TFLite file fails while the bundle is being assembled.
  with open(os.path.join(model_uri, layout.TFLITE_DIR, layout.TFLITE_MODEL),
            "wb") as f:
    f.write(b"junk")
  push_dir = tmp_path / "serving"
  with pytest.raises(ValueError):
    pusher.push(model_uri, str(push_dir), None, {})
  assert os.listdir(push_dir) == []


def test_unblessed_model_is_not_pushed(retrieval_export, tmp_path):
  model, blessing = _model_and_blessing(retrieval_export, tmp_path, 0)
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / "pushed")
  push_dir = tmp_path / "serving"
  pusher.Executor().Do({"model": [model], "model_blessing": [blessing]},
                       {"pushed_model": [pushed]},
                       {pusher.PUSH_DIR: str(push_dir)})
  assert pushed.get_int_custom_property("pushed") == 0
  assert not push_dir.exists()
  blessing.set_int_custom_property("blessed", 1)
  pusher.Executor().Do({"model": [model], "model_blessing": [blessing]},
                       {"pushed_model": [pushed]},
                       {pusher.PUSH_DIR: str(push_dir)})
  assert pushed.get_int_custom_property("pushed") == 1
  assert os.path.isdir(pushed.get_string_custom_property("pushed_destination"))


def _sessions(retrieval_export, root) -> standard_artifacts.Examples:
  """A sessions artifact whose test split holds the model's test examples."""
  sessions = standard_artifacts.Examples()
  sessions.uri = str(root / "sessions")
  sessions.split_names = artifact_utils.encode_split_names([F.TEST])
  split = os.path.join(sessions.uri, f"Split-{F.TEST}")
  os.makedirs(split)
  with tf.io.TFRecordWriter(os.path.join(split, "data.gz"),
                            options="GZIP") as writer:
    for record in serialized_examples(retrieval_export,
                                      retrieval_export["test"]):
      writer.write(record)
  return sessions


@pytest.mark.parametrize("saved_model_hit_rate, pushed", [(None, 1),
                                                          (1.5, 0)])
def test_a_file_worse_than_the_saved_model_is_not_pushed(
    retrieval_export, tmp_path, monkeypatch, saved_model_hit_rate, pushed):
  model, blessing = _model_and_blessing(retrieval_export, tmp_path, 1)
  result = standard_artifacts.ModelEvaluation()
  result.uri = str(tmp_path / "evaluation")
  # TFMA's figure of the SavedModel (1.5: no file can come within the bound).
  monkeypatch.setattr(pusher.evaluation, "read_metrics", lambda uri: {
      names.SCORES: {} if saved_model_hit_rate is None else {
          "hit_rate@10": saved_model_hit_rate}})
  monkeypatch.setattr(pusher.evaluation, "blessing_reason", lambda uri: "ok")
  output = standard_artifacts.PushedModel()
  output.uri = str(tmp_path / "pushed")
  push_dir = tmp_path / "serving"
  pusher.Executor().Do(
      {"model": [model], "model_blessing": [blessing], "evaluation": [result],
       "examples": [_sessions(retrieval_export, tmp_path)]},
      {"pushed_model": [output]},
      {pusher.PUSH_DIR: str(push_dir), pusher.MAX_TFLITE_DROP: 0.005})
  found = pusher.read_tflite_evaluation(output.uri)
  assert found["users"] == len(retrieval_export["test"])
  assert output.get_float_custom_property("tflite_hit_rate_at_10") == (
      found["overall"]["hit_rate@10"])
  assert output.get_int_custom_property("pushed") == pushed
  if pushed:
    with open(os.path.join(output.get_string_custom_property(
        "pushed_destination"), layout.BUNDLE_METADATA)) as f:
      assert json.load(f)["tflite_evaluation"] == found
  else:
    assert "below the SavedModel's 1.5000" in (
        output.get_string_custom_property("not_pushed_reason"))
    assert not push_dir.exists()
