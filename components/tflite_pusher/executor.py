"""The executor of TFLitePusher: publishes a blessed model as a versioned
on-device bundle.

TFX's Pusher copies a SavedModel; an app needs more: the TFLite file, the item
catalog, and a metadata.json that says what the model takes and returns and
how good it was. Each push is a new integer version directory
(<push_dir>/<version>/) with

    model.tflite    serving_default converted with builtin ops only
    saved_model/    the SavedModel (serving_default, evaluate, ...)
    items.json      the item catalog (id -> title, genres, year)
    metadata.json   version, metrics, blessing, K, input and output spec,
                    the model it came from and the settings that made it
                    (what its Trainer received), the data set

It is assembled in a staging directory and renamed into place in one step, so
a failing run never leaves a half-pushed model. An unblessed model is not
pushed (the artifact records pushed = 0). A model that is already the newest
version (a re-run whose Trainer was cached, re-evaluated against itself as
the baseline) is not pushed twice: the artifact records that version. The
reason for the blessing (TFMA's validation) is recorded on the artifact
(`blessing_reason`) and in metadata.json.
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
from components.lib import layout
from components.model.export import signature_names as names
from components.user_modules import evaluation

PUSH_DIR = "push_dir"
METRIC_OUTPUTS = "metric_outputs"
# metadata.json's metrics: {name: the evaluation's output} (the retrieval
# model's; the rating model's are given with `metric_outputs`).
RETRIEVAL_METRICS = {"model": names.SCORES,
                     "most_popular": names.POPULARITY_SCORES}


def _dtype_name(dtype) -> str:
  name = np.dtype(dtype).name
  return "string" if name in ("bytes", "object") else name


def signature_spec(tflite_path: str) -> Dict[str, Any]:
  """Inputs and outputs of the TFLite serving signature, as an app sees them.

  The model is run once on empty inputs (the retrieval model must give the
  most popular items), so a bundle whose model cannot run is never pushed and the
  output shapes are the ones a call returns.
  """
  interpreter = tf.lite.Interpreter(model_path=tflite_path)
  runner = interpreter.get_signature_runner(names.SERVING)
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
      "inputs": {name: {"dtype": _dtype_name(d["dtype"]),
                        "shape": [int(x) for x in d["shape_signature"]]}
                 for name, d in sorted(inputs.items())},
      "outputs": {name: {"dtype": _dtype_name(value.dtype),
                         "shape": [-1] + list(value.shape[1:])}
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
         blessing: Optional[Dict[str, Any]] = None) -> str:
  """Stages the bundle and renames it into <push_dir>/<version>; returns it.
  `catalog` is the ItemCatalog shipped beside a retrieval model."""
  tf.io.gfile.makedirs(push_dir)
  version = _new_version(push_dir)
  staging = os.path.join(push_dir, f".staging-{version}")
  target = os.path.join(push_dir, str(version))
  try:
    tf.io.gfile.makedirs(staging)
    tflite_path = os.path.join(staging, layout.TFLITE_MODEL)
    tf.io.gfile.copy(os.path.join(model_uri, layout.TFLITE_DIR,
                                  layout.TFLITE_MODEL), tflite_path)
    io_utils.copy_dir(path_utils.serving_model_path(model_uri),
                      os.path.join(staging, layout.BUNDLE_SAVED_MODEL))
    dataset = {}
    if catalog is not None:
      tf.io.gfile.copy(os.path.join(catalog.uri, layout.CATALOG),
                       os.path.join(staging, layout.CATALOG))
      dataset = {"dataset": catalog.get_string_custom_property(
          ItemCatalog.DATASET_PROPERTY)}
    spec = signature_spec(tflite_path)
    metadata = {
        "version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        **({"top_k": spec["outputs"][names.TOP_ITEM_IDS]["shape"][-1]}
           if names.TOP_ITEM_IDS in spec["outputs"] else {}),
        "signature": names.SERVING,
        **spec,
        "tflite_bytes": tf.io.gfile.stat(tflite_path).length,
        "metrics": metrics,
        "blessing": blessing or {},
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


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
    blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
    blessed = bool(blessing.get_int_custom_property("blessed"))
    evaluation_uri = (artifact_utils.get_single_uri(input_dict["evaluation"])
                      if input_dict.get("evaluation") else None)
    reason = (evaluation.blessing_reason(evaluation_uri) if evaluation_uri
              else "")
    pushed.set_string_custom_property("blessing_reason", reason)
    if not blessed:
      logging.warning("Model not blessed by the Evaluator (%s); nothing "
                      "pushed.", reason)
      pushed.set_int_custom_property("pushed", 0)
      return
    model = artifact_utils.get_single_instance(input_dict["model"])
    push_dir = exec_properties[PUSH_DIR]
    target = newest_version(push_dir)
    if target and pushed_model_uri(target) == model.uri:
      logging.info("%s is already pushed as %s", model.uri, target)
    else:
      metrics = {}
      if evaluation_uri:
        outputs = evaluation.read_metrics(evaluation_uri)
        shown = json.loads(exec_properties.get(METRIC_OUTPUTS) or "{}") or (
            RETRIEVAL_METRICS)
        metrics = {name: outputs.get(output, {})
                   for name, output in shown.items()}
      catalog = (artifact_utils.get_single_instance(input_dict["catalog"])
                 if input_dict.get("catalog") else None)
      baseline = blessing.get_string_custom_property("baseline_model") or None
      target = push(model.uri, push_dir, catalog, metrics,
                    {"reason": reason, "baseline_model": baseline})
      logging.info("Pushed %s", target)
    pushed.set_int_custom_property("pushed", 1)
    pushed.set_string_custom_property("pushed_destination", target)
    pushed.set_int_custom_property("pushed_version",
                                   int(os.path.basename(target)))
