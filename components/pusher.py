"""TFLitePusher: publishes a blessed model as a versioned on-device bundle.

TFX's Pusher copies a SavedModel; an app needs more: the TFLite file, the item
catalog, and a metadata.json that says what the model takes and returns and
how good it was. Each push is a new integer version directory
(<push_dir>/<version>/) with

    model.tflite    serving_default converted with builtin ops only
    saved_model/    the SavedModel (serving_default, evaluate, ...)
    items.json      the item catalog (id -> title, genres, year)
    metadata.json   version, metrics, blessing, K, input and output spec,
                    the model it came from, config

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
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import base_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.utils import io_utils
from tfx.utils import path_utils

from components import evaluation
from components import serving
from components import tflite
from components.artifacts import ItemCatalog
from components.sessionize import CATALOG_FILE
from components.trainer import TFLITE_DIR, TFLITE_FILE

METADATA_FILE = "metadata.json"
# metadata.json's metrics: {name: the evaluation's output} (the retrieval
# model's; the rating model's are given with `metric_outputs`).
RETRIEVAL_METRICS = {"model": serving.SCORES,
                     "most_popular": serving.POPULARITY_SCORES}
SAVED_MODEL_DIR = "saved_model"


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
  runner = interpreter.get_signature_runner(tflite.SIGNATURE)
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
  path = os.path.join(version_dir, METADATA_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f).get("model_uri")


def push(model_uri: str, push_dir: str, catalog_path: Optional[str],
         metrics: Dict[str, Dict[str, float]], run_config: Dict[str, Any],
         blessing: Optional[Dict[str, Any]] = None) -> str:
  """Stages the bundle and renames it into <push_dir>/<version>; returns it."""
  tf.io.gfile.makedirs(push_dir)
  version = _new_version(push_dir)
  staging = os.path.join(push_dir, f".staging-{version}")
  target = os.path.join(push_dir, str(version))
  try:
    tf.io.gfile.makedirs(staging)
    tflite_path = os.path.join(staging, TFLITE_FILE)
    tf.io.gfile.copy(os.path.join(model_uri, TFLITE_DIR, TFLITE_FILE),
                     tflite_path)
    io_utils.copy_dir(path_utils.serving_model_path(model_uri),
                      os.path.join(staging, SAVED_MODEL_DIR))
    if catalog_path:
      tf.io.gfile.copy(catalog_path, os.path.join(staging, CATALOG_FILE))
    spec = signature_spec(tflite_path)
    metadata = {
        "version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        **({"top_k": spec["outputs"][serving.TOP_ITEM_IDS]["shape"][-1]}
           if serving.TOP_ITEM_IDS in spec["outputs"] else {}),
        "signature": tflite.SIGNATURE,
        **spec,
        "tflite_bytes": tf.io.gfile.stat(tflite_path).length,
        "metrics": metrics,
        "blessing": blessing or {},
        "model_uri": model_uri,
        "config": run_config,
    }
    with tf.io.gfile.GFile(os.path.join(staging, METADATA_FILE), "w") as f:
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
    push_dir = exec_properties["push_dir"]
    target = newest_version(push_dir)
    if target and pushed_model_uri(target) == model.uri:
      logging.info("%s is already pushed as %s", model.uri, target)
    else:
      metrics = {}
      if evaluation_uri:
        outputs = evaluation.read_metrics(evaluation_uri)
        names = json.loads(exec_properties.get("metric_outputs") or "{}") or (
            RETRIEVAL_METRICS)
        metrics = {name: outputs.get(output, {})
                   for name, output in names.items()}
      catalog = None
      if input_dict.get("catalog"):
        catalog = os.path.join(
            artifact_utils.get_single_uri(input_dict["catalog"]), CATALOG_FILE)
      baseline = blessing.get_string_custom_property("baseline_model") or None
      target = push(model.uri, push_dir, catalog, metrics,
                    json.loads(exec_properties["run_config"]),
                    {"reason": reason, "baseline_model": baseline})
      logging.info("Pushed %s", target)
    pushed.set_int_custom_property("pushed", 1)
    pushed.set_string_custom_property("pushed_destination", target)
    pushed.set_int_custom_property("pushed_version",
                                   int(os.path.basename(target)))


class TFLitePusherSpec(component_spec.ComponentSpec):
  PARAMETERS = {
      "push_dir": component_spec.ExecutionParameter(type=str),
      "run_config": component_spec.ExecutionParameter(type=str),
      # JSON {name in metadata.json: evaluation output}; empty: retrieval's.
      "metric_outputs": component_spec.ExecutionParameter(type=str,
                                                          optional=True),
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
  }
  OUTPUTS = {
      "pushed_model": component_spec.ChannelParameter(
          type=standard_artifacts.PushedModel),
  }


class TFLitePusher(base_component.BaseComponent):
  """Pushes model.tflite + SavedModel + metadata.json when blessed."""

  SPEC_CLASS = TFLitePusherSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

  def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
               push_dir: str, run_config: str,
               evaluation: Optional[types.BaseChannel] = None,
               catalog: Optional[types.BaseChannel] = None,
               code_version: str = "",
               metric_outputs: Optional[Dict[str, str]] = None):
    super().__init__(spec=TFLitePusherSpec(
        model=model, model_blessing=model_blessing, evaluation=evaluation,
        catalog=catalog, push_dir=push_dir, run_config=run_config,
        code_version=code_version,
        metric_outputs=json.dumps(metric_outputs or {}),
        pushed_model=types.Channel(type=standard_artifacts.PushedModel)))
