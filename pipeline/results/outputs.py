"""What a run produced, read from its ML Metadata store: the runs of a
pipeline, the artifacts each node of a run wrote or reused, and a model
stage's outcome (metrics, blessing, push). `recsys run`'s summary, `recsys
runs` and `recsys report` are built on these.
"""
import json
import os
from typing import Any, Dict, List, Optional, Tuple

from ml_metadata.metadata_store import metadata_store
import tensorflow as tf

from components.lib import layout
from pipeline import metadata
from pipeline.config import ConfigError, RunConfig, from_json
from pipeline.dag import nodes

# The pipeline_run context's custom property holding the run's resolved
# config (written by the runner after the run).
RUN_CONFIG_PROPERTY = "run_config"
# On the pipeline_run context of a run that ingested one earlier span alone
# (pipeline/runners/local.py earlier_spans): the span.
INGESTED_SPAN_PROPERTY = "ingested_span"


def open_store(config: RunConfig) -> metadata_store.MetadataStore:
  """The run's MLMD store, for reading."""
  return metadata_store.MetadataStore(
      metadata.connection_config(config, read_only=True))


def pipeline_runs(config: RunConfig,
                  store: Optional[metadata_store.MetadataStore] = None
                  ) -> Tuple[Any, List[Tuple[Any, list]]]:
  """The MLMD store (read-only unless `store` is given) and the runs of
  `config`'s pipeline in it, oldest first, each as (pipeline_run context,
  its executions)."""
  if store is None:
    if config.metadata.backend == "sqlite" and not os.path.exists(
        config.metadata_path):
      raise ConfigError(f"no metadata store at {config.metadata_path}: no "
                        "pipeline has run with this output directory")
    store = open_store(config)
  pipeline = store.get_context_by_type_and_name("pipeline", config.name)
  if pipeline is None:
    return store, []
  in_pipeline = {e.id for e in store.get_executions_by_context(pipeline.id)}
  found = []
  for run in sorted(store.get_contexts_by_type("pipeline_run"),
                    key=lambda c: (c.create_time_since_epoch, c.id)):
    executions = [e for e in store.get_executions_by_context(run.id)
                  if e.id in in_pipeline]
    if executions:
      found.append((run, executions))
  return store, found


def property_value(artifact, name: str) -> Optional[Any]:
  """An int or string custom property of an artifact, None when unset."""
  if name not in artifact.custom_properties:
    return None
  value = artifact.custom_properties[name]
  return value.int_value if value.HasField("int_value") else value.string_value


_OUTPUT_EVENT_TYPES = (4, 5)  # Event.OUTPUT, Event.DECLARED_OUTPUT


def execution_nodes(store, executions) -> Dict[int, str]:
  """{execution id: the id of the node (component) it ran}."""
  node_type = store.get_context_type("node").id
  node_of = {}
  for execution in executions:
    for context in store.get_contexts_by_execution(execution.id):
      if context.type_id == node_type:  # named <pipeline>.<node id>
        node_of[execution.id] = context.name.split(".", 1)[1]
  return node_of


def run_outputs(store, executions) -> Dict[str, Dict[str, Any]]:
  """{node id: {output key: artifact}} of a run's executions (cached ones
  included: their outputs are the reused artifacts)."""
  node_of = execution_nodes(store, executions)
  events = store.get_events_by_execution_ids(list(node_of))
  artifacts = {a.id: a for a in store.get_artifacts_by_id(
      list({e.artifact_id for e in events}))}
  outputs: Dict[str, Dict[str, Any]] = {}
  for event in events:
    if event.type not in _OUTPUT_EVENT_TYPES:
      continue
    key = next((s.key for s in event.path.steps if s.HasField("key")), "")
    outputs.setdefault(node_of[event.execution_id], {})[key] = artifacts[
        event.artifact_id]
  return outputs


def outcome(outputs: Dict[str, Dict[str, Any]],
            stage: nodes.Stage = nodes.RETRIEVAL) -> Dict[str, Any]:
  """A stage's metrics, blessing (and its reason, as the Pusher recorded
  it), the TFLite file's own evaluation, and push destination (None: not
  pushed, and why when blessed) among a run's outputs (by node); keys only
  for the artifacts present."""
  from components.user_modules.evaluation import read_metrics  # pylint: disable=import-outside-toplevel
  result: Dict[str, Any] = {}
  evaluator = outputs.get(stage.evaluator, {})
  if "evaluation" in evaluator:
    result["metrics"] = read_metrics(evaluator["evaluation"].uri)
  if "blessing" in evaluator:
    result["blessed"] = bool(property_value(evaluator["blessing"], "blessed"))
  pushed = outputs.get(stage.pusher, {}).get("pushed_model")
  if pushed is not None:
    result["pushed"] = (property_value(pushed, "pushed_destination")
                        if property_value(pushed, "pushed") else None)
    result["blessing_reason"] = property_value(pushed, "blessing_reason")
    if property_value(pushed, "not_pushed_reason"):
      result["not_pushed_reason"] = property_value(pushed, "not_pushed_reason")
    from components.tflite_pusher.executor import read_tflite_evaluation  # pylint: disable=import-outside-toplevel
    tflite = read_tflite_evaluation(pushed.uri)
    if tflite:
      result["tflite"] = tflite
  return result


def forward_outcome(outputs: Dict[str, Dict[str, Any]]
                    ) -> Optional[Dict[str, Any]]:
  """The forward evaluation of a run (the model blessed before the newest
  span, on that span): its status file, and the metrics when it evaluated;
  None when the run had none."""
  from components.forward_evaluator.executor import EVALUATED  # pylint: disable=import-outside-toplevel
  from components.user_modules.evaluation import read_metrics  # pylint: disable=import-outside-toplevel
  evaluation = outputs.get(nodes.FORWARD_EVALUATOR, {}).get("evaluation")
  path = evaluation and os.path.join(evaluation.uri, layout.FORWARD_STATUS)
  if not path or not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    result = json.load(f)
  if result["status"] == EVALUATED:
    result["metrics"] = read_metrics(evaluation.uri)
  return result


def warm_start_model(config: RunConfig, newest_span: int) -> Optional[str]:
  """The latest blessed retrieval model of `config`'s pipeline over the same
  data directory that was trained on spans before `newest_span`: what the
  Trainer warm-starts from (its uri; None when there is none)."""
  from components.forward_evaluator.executor import model_span  # pylint: disable=import-outside-toplevel
  try:
    store, found = pipeline_runs(config)
  except ConfigError:  # no store yet
    return None
  for run, executions in reversed(found):
    recorded = recorded_config(run)
    if recorded is None or recorded.data.data_dir != config.data.data_dir:
      continue
    found_outputs = run_outputs(store, executions)
    model = found_outputs.get(nodes.RETRIEVAL.trainer, {}).get("model")
    blessing = found_outputs.get(nodes.RETRIEVAL.evaluator, {}).get(
        "blessing")
    if model is None or blessing is None or not property_value(
        blessing, "blessed"):
      continue
    span = model_span(model)
    if span is not None and span < newest_span:
      return model.uri
  return None


def stage_summary(outputs: Dict[str, Dict[str, Any]],
                  stage: nodes.Stage) -> Dict[str, Any]:
  """Where a stage's model, its evaluation and pushed bundle landed."""
  summary: Dict[str, Any] = {}
  trainer = outputs.get(stage.trainer, {})
  if "model" in trainer:
    summary["model"] = trainer["model"].uri
    training = os.path.join(trainer["model"].uri, layout.TRAINING_SUMMARY)
    if tf.io.gfile.exists(training):
      with tf.io.gfile.GFile(training) as f:
        summary["training"] = json.load(f)
  if "model_run" in trainer:
    summary["tensorboard"] = trainer["model_run"].uri
  if "evaluation" in outputs.get(stage.evaluator, {}):
    summary["evaluation"] = outputs[stage.evaluator]["evaluation"].uri
  summary.update(outcome(outputs, stage))
  return summary


def summarize(config: RunConfig) -> Dict[str, Any]:
  """The latest run: the retrieval stage's summary at the top level, the
  next-item ranker's (its metrics: the two stages') under `ranker`, the
  rating stage's under `ranking` and the rating re-order's metrics under
  `two_stage` (when the pipeline has them)."""
  from components.two_stage_evaluator.executor import read_metrics  # pylint: disable=import-outside-toplevel
  summary: Dict[str, Any] = {"output_dir": config.output_dir,
                             "run_config": config.run_config_path}
  store, found = pipeline_runs(config)
  if not found:
    return summary
  outputs = run_outputs(store, found[-1][1])
  sessions = outputs.get("Sessionize", {}).get("sessions")
  if sessions is not None:
    summary["sessions"] = sessions.uri
  summary.update(stage_summary(outputs, nodes.RETRIEVAL))
  if nodes.RANKER.trainer in outputs:
    summary["ranker"] = stage_summary(outputs, nodes.RANKER)
  if nodes.RANKING.trainer in outputs:
    summary["ranking"] = stage_summary(outputs, nodes.RANKING)
  evaluation = outputs.get(nodes.TWO_STAGE_EVALUATOR, {}).get("evaluation")
  if evaluation is not None:
    summary["two_stage"] = read_metrics(evaluation.uri)
  forward = forward_outcome(outputs)
  if forward is not None:
    summary["forward"] = forward
  drift = drift_outcome(outputs)
  if drift is not None:
    summary["drift"] = drift
  return summary


def drift_outcome(outputs: Dict[str, Dict[str, Any]]
                  ) -> Optional[Dict[str, Dict[str, Any]]]:
  """The newest span's distances from the previous span's statistics, per
  feature with its bound (None: the run checked no drift)."""
  from components.sessionize.anomalies import drift_distances  # pylint: disable=import-outside-toplevel
  anomalies = outputs.get(nodes.DRIFT_VALIDATOR, {}).get("anomalies")
  if anomalies is None:
    return None
  return drift_distances(anomalies.uri,
                         anomalies.properties["split_names"].string_value)


def recorded_config(run) -> Optional[RunConfig]:
  """The config a pipeline_run context recorded (None for a run that did
  not record one)."""
  if RUN_CONFIG_PROPERTY not in run.custom_properties:
    return None
  return from_json(run.custom_properties[RUN_CONFIG_PROPERTY].string_value)
