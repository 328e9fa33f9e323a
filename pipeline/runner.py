"""Runs the pipeline on TFX's LocalDagRunner or BeamDagRunner and reports
what it produced.

The MLMD store (a SQLite file inside the output directory by default, or a
shared MySQL database) lets a second run with the same config and inputs
reuse the cached executions. The console shows each component starting and
finishing (with its duration, or that it was cached); TFX's full log goes to
<output_dir>/logs/run.log.
"""
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from ml_metadata.metadata_store import metadata_store
import tensorflow as tf

from pipeline import metadata
from pipeline import nodes
from pipeline.config import RunConfig, is_uri

RUN_CONFIG_FILE = "run_config.json"
LOG_FILE = os.path.join("logs", "run.log")
TIMINGS_FILE = "component_timings.json"


@dataclasses.dataclass
class ComponentRun:
  name: str
  seconds: float = 0.0
  cached: bool = False


# What each DAG runner logs as a component starts and ends.
_STARTED = ("Component %s is running.", "node %s is running.")
_FINISHED = ("Component %s is finished.", "node %s is finished.")


class ProgressHandler(logging.Handler):
  """Turns the DAG runner's log records into one console line per component
  (both runners run one component at a time)."""

  def __init__(self, stream=None):
    super().__init__(level=logging.INFO)
    self.stream = stream or sys.stdout
    self.runs: List[ComponentRun] = []
    self._started = 0.0

  def emit(self, record: logging.LogRecord) -> None:
    message = record.msg
    if message in _STARTED:
      self.runs.append(ComponentRun(str(record.args[0])))
      self._started = time.monotonic()
      print(f"[recsys] {self.runs[-1].name}: running", file=self.stream,
            flush=True)
    elif message == "A cached execution %d is used." and self.runs:
      self.runs[-1].cached = True
    elif message in _FINISHED and self.runs:
      run = self.runs[-1]
      run.seconds = time.monotonic() - self._started
      status = "cached" if run.cached else "done"
      print(f"[recsys] {run.name}: {status} in {run.seconds:.1f} s",
            file=self.stream, flush=True)


def quiet_console() -> None:
  """Console shows errors only (the CLI's choice); run.log keeps the rest."""
  root = logging.getLogger()
  for handler in list(root.handlers):
    root.removeHandler(handler)
  console = logging.StreamHandler(sys.stderr)
  console.setLevel(logging.ERROR)
  console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
  root.addHandler(console)
  # TensorFlow's logger prints to stderr by itself; route it through root.
  tf_logger = tf.get_logger()
  for handler in list(tf_logger.handlers):
    tf_logger.removeHandler(handler)
  tf_logger.propagate = True


def has_user_features(dataset: str, data_dir: str) -> bool:
  """Detects the input files (a wrong path fails here, naming it) and tells
  whether they have user features."""
  if dataset == "aliccp":
    from components.aliccp_format import detect_files  # pylint: disable=import-outside-toplevel
    detect_files(data_dir)
    return True
  from components.movielens_formats import detect_files  # pylint: disable=import-outside-toplevel,reimported
  return detect_files(data_dir).users is not None


def with_data_features(config: RunConfig,
                       data_dir: Optional[str] = None) -> RunConfig:
  """`config` with its feature groups resolved against the data: optional
  groups are dropped when the data set lacks them (e.g. no users in CSV
  layouts). `data_dir` is where to look (default: the config's)."""
  from components import feature_config as fc  # pylint: disable=import-outside-toplevel
  return config.with_features(fc.resolve(
      config.feature_config(),
      has_user_features(config.data.dataset, data_dir or config.data.data_dir)))


def run(config: RunConfig, quiet: bool = False) -> Dict[str, Any]:
  """Runs the whole pipeline; returns the summary of what it produced.

  The input directory is checked first, so that a wrong path fails at once
  with the path in the message. `quiet` limits the console to errors.
  """
  # Imported here: TFX is slow to import and `recsys --help` should not wait.
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  from pipeline.pipeline import create_pipeline  # pylint: disable=import-outside-toplevel

  # The resolved feature config is what the run records and uses.
  config = with_data_features(config)
  connection = metadata.connection_config(config)
  if quiet:
    quiet_console()

  _write(os.path.join(config.output_dir, RUN_CONFIG_FILE), config.to_json())
  # TFX logs through absl at INFO: everything to run.log, and the component
  # start/finish records to the console through ProgressHandler. The log is
  # written locally, and copied at the end when the output is on storage.
  log_path = os.path.join(config.output_dir, LOG_FILE)
  local_log = (os.path.join(tempfile.mkdtemp(prefix="recsys-"), "run.log")
               if is_uri(log_path) else log_path)
  os.makedirs(os.path.dirname(local_log), exist_ok=True)
  root = logging.getLogger()
  saved_level, saved_verbosity = root.level, absl_logging.get_verbosity()
  root.setLevel(logging.INFO)
  absl_logging.set_verbosity(absl_logging.INFO)
  log_file = logging.FileHandler(local_log)
  log_file.setFormatter(logging.Formatter(
      "%(asctime)s %(levelname)s %(name)s %(filename)s:%(lineno)d] %(message)s"))
  root.addHandler(log_file)
  progress = ProgressHandler()
  logging.getLogger("absl").addHandler(progress)
  started = time.monotonic()
  try:
    dag_runner(config.runner).run(create_pipeline(config, metadata=connection))
  finally:
    logging.getLogger("absl").removeHandler(progress)
    root.removeHandler(log_file)
    log_file.close()
    root.setLevel(saved_level)
    absl_logging.set_verbosity(saved_verbosity)
    if local_log != log_path:
      _copy(local_log, log_path)
    _write(os.path.join(config.output_dir, TIMINGS_FILE), json.dumps(
        [dataclasses.asdict(r) for r in progress.runs], indent=2))
  summary = summarize(config)
  summary["config"] = config
  summary["seconds"] = time.monotonic() - started
  summary["components"] = [dataclasses.asdict(r) for r in progress.runs]
  return summary


def _write(path: str, text: str) -> None:
  """Writes a local file or an object on storage (gs://...)."""
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(text)


def _copy(local: str, path: str) -> None:
  tf.io.gfile.makedirs(os.path.dirname(path))
  tf.io.gfile.copy(local, path, overwrite=True)


def dag_runner(name: str):
  """TFX's runner called `name` (config.runner)."""
  # pylint: disable=import-outside-toplevel
  if name == "beam":
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner
    return BeamDagRunner()
  from tfx.orchestration.local.local_dag_runner import LocalDagRunner
  return LocalDagRunner()


def open_store(config: RunConfig) -> metadata_store.MetadataStore:
  """The run's MLMD store, for reading."""
  return metadata_store.MetadataStore(
      metadata.connection_config(config, read_only=True))


def newest_by_type(store: metadata_store.MetadataStore,
                   artifacts) -> Dict[str, Any]:
  """The newest of `artifacts` of each type, by type name."""
  types = {t.id: t.name for t in store.get_artifact_types()}
  latest: Dict[str, Any] = {}
  for artifact in artifacts:
    name = types[artifact.type_id]
    if name not in latest or artifact.id > latest[name].id:
      latest[name] = artifact
  return latest


def latest_artifacts(config: RunConfig) -> Dict[str, Any]:
  """The newest artifact of each type (by type name) in this pipeline's MLMD."""
  store = open_store(config)
  context = store.get_context_by_type_and_name("pipeline", config.name)
  if context is None:
    return {}
  return newest_by_type(store, store.get_artifacts_by_context(context.id))


def property_value(artifact, name: str) -> Optional[Any]:
  """An int or string custom property of an artifact, None when unset."""
  if name not in artifact.custom_properties:
    return None
  value = artifact.custom_properties[name]
  return value.int_value if value.HasField("int_value") else value.string_value


_OUTPUT_EVENT_TYPES = (4, 5)  # Event.OUTPUT, Event.DECLARED_OUTPUT


def run_outputs(store, executions) -> Dict[str, Dict[str, Any]]:
  """{node id: {output key: artifact}} of a run's executions (cached ones
  included: their outputs are the reused artifacts)."""
  node_type = store.get_context_type("node").id
  node_of = {}
  for execution in executions:
    for context in store.get_contexts_by_execution(execution.id):
      if context.type_id == node_type:  # named <pipeline>.<node id>
        node_of[execution.id] = context.name.split(".", 1)[1]
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
  it) and push destination (None: not pushed) among a run's outputs (by
  node); keys only for the artifacts present."""
  from components.evaluation import read_metrics  # pylint: disable=import-outside-toplevel
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
  return result


def stage_summary(outputs: Dict[str, Dict[str, Any]],
                  stage: nodes.Stage) -> Dict[str, Any]:
  """Where a stage's model, its evaluation and pushed bundle landed."""
  summary: Dict[str, Any] = {}
  trainer = outputs.get(stage.trainer, {})
  if "model" in trainer:
    summary["model"] = trainer["model"].uri
    training = os.path.join(trainer["model"].uri, "training_summary.json")
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
  ranking stage's under `ranking` and the two-stage metrics under
  `two_stage` (when the pipeline has them)."""
  from pipeline import runs  # pylint: disable=import-outside-toplevel
  from components import two_stage  # pylint: disable=import-outside-toplevel
  summary: Dict[str, Any] = {"output_dir": config.output_dir,
                             "run_config": os.path.join(config.output_dir,
                                                        RUN_CONFIG_FILE)}
  store, found = runs.pipeline_runs(config)
  if not found:
    return summary
  outputs = run_outputs(store, found[-1][1])
  summary.update(stage_summary(outputs, nodes.RETRIEVAL))
  if nodes.RANKING.trainer in outputs:
    summary["ranking"] = stage_summary(outputs, nodes.RANKING)
  evaluation = outputs.get(nodes.TWO_STAGE_EVALUATOR, {}).get("evaluation")
  if evaluation is not None:
    summary["two_stage"] = two_stage.read_metrics(evaluation.uri)
  return summary
