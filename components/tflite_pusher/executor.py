"""The executor of TFLitePusher: evaluates the converted model.tflite, then
publishes a blessed model as a versioned on-device bundle.

TFX's Pusher copies a SavedModel; an app needs more: the TFLite file, the
mapping of raw ids to its inputs, the item catalog, and a metadata.json that
says what the model takes and returns and how good it was. Each push is a
new integer version directory (<push_dir>/<version>/) with

    model.tflite        the on-device model (retrieval: `ondevice`, index
                        inputs at a batch of one; rating: serving_default)
    input_mapping.json  raw values -> the model's indices (retrieval)
    saved_model/        the SavedModel (serving_default, evaluate, ...)
    items.json          the item catalog (id -> title, genres, year)
    metadata.json       version, metrics (TFMA's, and the TFLite file's own),
                        blessing, K, input and output spec, the model it came
                        from and the settings that made it, the data set

With the test examples given (retrieval), the first step evaluates
model.tflite itself through the TFLite interpreter (file_evaluation.py); a
file whose HR@10 is more than `max_tflite_drop` below the SavedModel's TFMA
figure is not pushed, and the reason gives both. The file's figures are
written beside the PushedModel artifact (tflite_evaluation.json) and on it.

A next-item ranker's Pusher is given `retrieval_push`, the retrieval stage's
push of the model the ranker follows (its Trainer's base_model). The ranker
is pushed only beside that retrieval version: when it was not pushed, or
is another model, nothing is. Its model.tflite is evaluated chained after
that bundle's file (file_evaluation.py), and metadata.json's `chain` says
how an app chains the two (the retrieval version, the candidates, the
steps) with both files' test figures.

The bundle is assembled in a staging directory and renamed into place in one
step, so a failing run never leaves a half-pushed model. An unblessed model
is not pushed (the artifact records pushed = 0). A model that is already the
newest version (a re-run whose Trainer was cached, re-evaluated against
itself as the baseline) is not pushed twice: the artifact records that
version. The reason for the blessing (TFMA's validation) is recorded on the
artifact (`blessing_reason`) and in metadata.json; the reason a blessed model
was not pushed in `not_pushed_reason`.
"""
import datetime
import json
import os
import time
from typing import Any, Dict, List, Optional

from absl import logging
import numpy as np
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx.utils import path_utils

from components.artifacts import ItemCatalog
from components.lib import features as F
from components.lib import layout
from components.model.export import signature_names as names
from components.tflite_pusher import file_evaluation
from components.user_modules import evaluation

PUSH_DIR = "push_dir"
METRIC_OUTPUTS = "metric_outputs"
MAX_TFLITE_DROP = "max_tflite_drop"
# Beside the PushedModel artifact: the TFLite file's test metrics.
TFLITE_EVALUATION = "tflite_evaluation.json"
# metadata.json's metrics: {name: the evaluation's output} (the retrieval
# model's; the rating model's are given with `metric_outputs`).
RETRIEVAL_METRICS = {"model": names.SCORES,
                     "most_popular": names.POPULARITY_SCORES}
# What metadata.json's `chain` tells an app (TwoStageRecommender does it).
CHAIN_STEPS = [
    "Call the retrieval bundle (`retrieval_version`) as on its own: the "
    "query mapped with its input_mapping.json, its model.tflite invoked.",
    "From its `scores` output (every index), drop the user's history, "
    "PADDING and UNKNOWN; take the `candidates` best indices (ties: the "
    "lower index first) and their scores, PADDING and the lowest float "
    "in slots left over.",
    "Invoke this model.tflite's `rank` with them as candidate_item_index "
    "(int32) and candidate_score (float32), and the same context and user "
    "index inputs the retrieval model was given.",
    "Order the candidates by its `scores` output, highest first.",
]


def _dtype_name(dtype) -> str:
  name = np.dtype(dtype).name
  return "string" if name in ("bytes", "object") else name


def signature_spec(tflite_path: str) -> Dict[str, Any]:
  """The signature of the TFLite file and its inputs and outputs, as an app
  sees them.

  The model is run once on empty inputs (all padding: the retrieval model
  must give the most popular items), so a bundle whose model cannot run is
  never pushed and the output shapes are the ones a call returns.
  """
  interpreter = tf.lite.Interpreter(model_path=tflite_path)
  (signature,) = interpreter.get_signature_list()
  runner = interpreter.get_signature_runner(signature)
  inputs = runner.get_input_details()
  # A dynamic width (-1: the rating model's candidates) is run with one.
  empty = {name: np.zeros([1, max(1, int(d["shape_signature"][-1]))],
                          dtype=object if _dtype_name(d["dtype"]) == "string"
                          else d["dtype"]) for name, d in inputs.items()}
  for name, d in inputs.items():
    if _dtype_name(d["dtype"]) == "string":
      empty[name][:] = b""
  outputs = runner(**empty)
  return {
      "signature": signature,
      "inputs": {name: {"dtype": _dtype_name(d["dtype"]),
                        "shape": [int(x) for x in d["shape_signature"]]}
                 for name, d in sorted(inputs.items())},
      "outputs": {name: {"dtype": _dtype_name(value.dtype),
                         "shape": [int(x) for x in value.shape]}
                  for name, value in sorted(outputs.items())},
  }


def _new_version(push_dir: str) -> int:
  version = int(time.time())
  while tf.io.gfile.exists(os.path.join(push_dir, str(version))):
    version += 1
  return version


def newest_version(push_dir: str) -> Optional[str]:
  """The newest version directory under push_dir, None if there is none."""
  if not tf.io.gfile.isdir(push_dir):
    return None
  versions = [int(name.rstrip("/")) for name in tf.io.gfile.listdir(push_dir)
              if name.rstrip("/").isdigit()]
  return os.path.join(push_dir, str(max(versions))) if versions else None


def pushed_model_uri(version_dir: str) -> Optional[str]:
  """The model artifact a pushed version came from (None before it was
  recorded)."""
  path = os.path.join(version_dir, layout.BUNDLE_METADATA)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f).get("model_uri")


def _model_settings(model_uri: str) -> Optional[Dict[str, Any]]:
  """The settings the model's Trainer received (None if it did not record
  them)."""
  path = os.path.join(model_uri, layout.MODEL_SETTINGS)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def push(model_uri: str, push_dir: str, catalog: Optional[types.Artifact],
         metrics: Dict[str, Dict[str, float]],
         blessing: Optional[Dict[str, Any]] = None,
         tflite_evaluation: Optional[Dict[str, Any]] = None,
         chain: Optional[Dict[str, Any]] = None) -> str:
  """Stages the bundle and renames it into <push_dir>/<version>; returns it.
  `catalog` is the ItemCatalog shipped beside a retrieval model,
  `tflite_evaluation` the file's own test metrics (a ranker's: chained),
  `chain` how a ranker follows its retrieval bundle."""
  tf.io.gfile.makedirs(push_dir)
  version = _new_version(push_dir)
  staging = os.path.join(push_dir, f".staging-{version}")
  target = os.path.join(push_dir, str(version))
  tflite_dir = os.path.join(model_uri, layout.TFLITE_DIR)
  try:
    tf.io.gfile.makedirs(staging)
    tflite_path = os.path.join(staging, layout.TFLITE_MODEL)
    tf.io.gfile.copy(os.path.join(tflite_dir, layout.TFLITE_MODEL),
                     tflite_path)
    mapping = {}
    mapping_path = os.path.join(tflite_dir, layout.INPUT_MAPPING)
    if tf.io.gfile.exists(mapping_path):
      tf.io.gfile.copy(mapping_path,
                       os.path.join(staging, layout.INPUT_MAPPING))
      with tf.io.gfile.GFile(mapping_path) as f:
        raw = json.load(f)
      mapping = {"input_mapping": layout.INPUT_MAPPING, "top_k": raw["top_k"],
                 "context_length": raw["context_length"]}
    io_utils.copy_dir(path_utils.serving_model_path(model_uri),
                      os.path.join(staging, layout.BUNDLE_SAVED_MODEL))
    dataset = {}
    if catalog is not None:
      tf.io.gfile.copy(os.path.join(catalog.uri, layout.CATALOG),
                       os.path.join(staging, layout.CATALOG))
      dataset = {"dataset": catalog.get_string_custom_property(
          ItemCatalog.DATASET_PROPERTY)}
    metadata = {
        "version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        **mapping,
        **signature_spec(tflite_path),
        "tflite_bytes": tf.io.gfile.stat(tflite_path).length,
        "metrics": metrics,
        **({"tflite_evaluation": tflite_evaluation} if tflite_evaluation
           else {}),
        "blessing": blessing or {},
        **({"chain": chain} if chain else {}),
        "model_uri": model_uri,
        **dataset,
        "config": _model_settings(model_uri),
    }
    with tf.io.gfile.GFile(os.path.join(staging, layout.BUNDLE_METADATA),
                           "w") as f:
      f.write(json.dumps(metadata, indent=2, sort_keys=True))
    tf.io.gfile.rename(staging, target)
  finally:
    if tf.io.gfile.exists(staging):
      tf.io.gfile.rmtree(staging)
  return target


def evaluate_tflite(tflite_dir: str, sessions: types.Artifact,
                    output_uri: str, ranker_path: Optional[str] = None
                    ) -> Dict[str, Any]:
  """The model.tflite in `tflite_dir` (with its input mapping; chained
  with the ranker file at `ranker_path`) on the test split
  (file_evaluation.py), written to <output_uri>/tflite_evaluation.json."""
  pattern = os.path.join(artifact_utils.get_split_uri([sessions], F.TEST), "*")
  records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern)),
                                    compression_type="GZIP")
  retrieval_path = os.path.join(tflite_dir, layout.TFLITE_MODEL)
  found = file_evaluation.evaluate_file(
      retrieval_path, (r.numpy() for r in records),
      os.path.join(tflite_dir, layout.INPUT_MAPPING), ranker_path)
  found["tflite_bytes"] = tf.io.gfile.stat(ranker_path or retrieval_path).length
  if ranker_path:
    found["retrieval_tflite_bytes"] = tf.io.gfile.stat(retrieval_path).length
  tf.io.gfile.makedirs(output_uri)
  with tf.io.gfile.GFile(os.path.join(output_uri, TFLITE_EVALUATION), "w") as f:
    f.write(json.dumps(found, indent=2, sort_keys=True))
  return found


def read_tflite_evaluation(pushed_uri: str) -> Optional[Dict[str, Any]]:
  """What evaluate_tflite wrote beside a PushedModel (None: nothing)."""
  path = os.path.join(pushed_uri, TFLITE_EVALUATION)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def _read_json(path: str) -> Dict[str, Any]:
  if not tf.io.gfile.exists(path):
    return {}
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def followed_retrieval(retrieval_push: types.Artifact, model_uri: str):
  """(the retrieval bundle a ranker is chained after, or None; why not).
  It must be pushed and hold the model the ranker was trained after."""
  if not retrieval_push.get_int_custom_property("pushed"):
    why = (retrieval_push.get_string_custom_property("not_pushed_reason")
           or retrieval_push.get_string_custom_property("blessing_reason"))
    return None, f"the retrieval model it follows was not pushed ({why})"
  bundle = retrieval_push.get_string_custom_property("pushed_destination")
  follows = _read_json(os.path.join(model_uri, layout.TRAINING_SUMMARY)).get(
      layout.RETRIEVAL_MODEL_URI)
  if pushed_model_uri(bundle) != follows:
    return None, (f"the retrieval bundle {bundle} holds "
                  f"{pushed_model_uri(bundle)}, not the model the ranker "
                  f"follows ({follows})")
  return bundle, None


def chain_metadata(bundle: str, retrieval_push: types.Artifact,
                   ranker_tflite: str) -> Dict[str, Any]:
  """metadata.json's `chain` of a ranker pushed after `bundle`."""
  (candidates,) = {d["shape"][-1] for name, d in
                   signature_spec(ranker_tflite)["inputs"].items()
                   if name == F.CANDIDATE_ITEM_INDEX}
  retrieval_file = read_tflite_evaluation(retrieval_push.uri) or {}
  return {"retrieval_version": int(os.path.basename(bundle)),
          "retrieval_model_uri": pushed_model_uri(bundle),
          "candidates": candidates, "steps": CHAIN_STEPS,
          "retrieval_tflite_evaluation": retrieval_file.get("overall", {})}


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
    blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
    blessed = bool(blessing.get_int_custom_property("blessed"))
    model = artifact_utils.get_single_instance(input_dict["model"])
    evaluation_uri = (artifact_utils.get_single_uri(input_dict["evaluation"])
                      if input_dict.get("evaluation") else None)
    reason = (evaluation.blessing_reason(evaluation_uri) if evaluation_uri
              else "")
    pushed.set_string_custom_property("blessing_reason", reason)
    outputs = evaluation.read_metrics(evaluation_uri) if evaluation_uri else {}
    model_tflite_dir = os.path.join(model.uri, layout.TFLITE_DIR)
    tflite_dir, ranker_path, chain = model_tflite_dir, None, None
    if input_dict.get("retrieval_push"):
      retrieval_push = artifact_utils.get_single_instance(
          input_dict["retrieval_push"])
      bundle, refusal = followed_retrieval(retrieval_push, model.uri)
      if refusal:
        logging.warning("Not pushed: %s", refusal)
        pushed.set_string_custom_property("not_pushed_reason", refusal)
        pushed.set_int_custom_property("pushed", 0)
        return
      tflite_dir = bundle
      ranker_path = os.path.join(model_tflite_dir, layout.TFLITE_MODEL)
      chain = chain_metadata(bundle, retrieval_push, ranker_path)
    tflite_evaluation = None
    if input_dict.get("examples"):
      tflite_evaluation = evaluate_tflite(
          tflite_dir, artifact_utils.get_single_instance(input_dict["examples"]),
          pushed.uri, ranker_path)
      hit_rate = tflite_evaluation["overall"][file_evaluation.HIT_RATE_AT_10]
      pushed.set_float_custom_property("tflite_hit_rate_at_10", hit_rate)
      logging.info("model.tflite on the test split: %s",
                   json.dumps(tflite_evaluation["overall"]))
    if not blessed:
      logging.warning("Model not blessed by the Evaluator (%s); nothing "
                      "pushed.", reason)
      pushed.set_int_custom_property("pushed", 0)
      return
    if tflite_evaluation is not None:
      refusal = file_evaluation.push_refusal(
          tflite_evaluation["overall"][file_evaluation.HIT_RATE_AT_10],
          outputs.get(names.SCORES, {}).get(file_evaluation.HIT_RATE_AT_10),
          float(exec_properties.get(MAX_TFLITE_DROP) or 0.0))
      if refusal:
        logging.warning("Not pushed: %s", refusal)
        pushed.set_string_custom_property("not_pushed_reason", refusal)
        pushed.set_int_custom_property("pushed", 0)
        return
    push_dir = exec_properties[PUSH_DIR]
    target = newest_version(push_dir)
    if target and pushed_model_uri(target) == model.uri:
      logging.info("%s is already pushed as %s", model.uri, target)
    else:
      metrics = {}
      if evaluation_uri:
        shown = json.loads(exec_properties.get(METRIC_OUTPUTS) or "{}") or (
            RETRIEVAL_METRICS)
        metrics = {name: outputs.get(output, {})
                   for name, output in shown.items()}
      catalog = (artifact_utils.get_single_instance(input_dict["catalog"])
                 if input_dict.get("catalog") else None)
      baseline = blessing.get_string_custom_property("baseline_model") or None
      target = push(model.uri, push_dir, catalog, metrics,
                    {"reason": reason, "baseline_model": baseline},
                    tflite_evaluation, chain)
      logging.info("Pushed %s", target)
    pushed.set_int_custom_property("pushed", 1)
    pushed.set_string_custom_property("pushed_destination", target)
    pushed.set_int_custom_property("pushed_version",
                                   int(os.path.basename(target)))
