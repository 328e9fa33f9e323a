"""Runs the pipeline from this process, on TFX's LocalDagRunner or
BeamDagRunner, and returns the summary of what it produced.

The MLMD store (a SQLite file inside the output directory by default, or a
shared MySQL database) lets a second run with the same config and inputs
reuse the cached executions. The run's resolved config is recorded on its
`pipeline_run` context in MLMD (what `recsys runs` and `recsys report`
read) and in <output_dir>/run_config.json. The console shows each component
starting and finishing (with its duration, or that it was cached); TFX's
full log goes to <output_dir>/logs/run.log. Temporary files go to a
directory of the run's own, removed when it ends (runners/scratch.py).
"""
import dataclasses
import gc
import json
import logging
import os
import socket
import sys
import time
from typing import Any, Dict, List, Optional

from apache_beam.utils import shared
from ml_metadata.metadata_store import metadata_store
import tensorflow as tf

from components.lib import spans
from pipeline import metadata
from pipeline.config import RunConfig, is_uri
from pipeline.results import outputs
from pipeline.runners.scratch import scratch_tempdir


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


# What TFX logs as an error when a step fails, before raising the step's
# exception, which the CLI prints itself (as `recsys: error: ...` or with
# its traceback); run.log keeps it.
_STEP_FAILED = "Execution %d failed."


def _not_step_failed(record: logging.LogRecord) -> bool:
  return record.msg != _STEP_FAILED


def quiet_console() -> None:
  """Console shows errors only (the CLI's choice); run.log keeps the rest."""
  root = logging.getLogger()
  for handler in list(root.handlers):
    root.removeHandler(handler)
  console = logging.StreamHandler(sys.stderr)
  console.setLevel(logging.ERROR)
  console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
  console.addFilter(_not_step_failed)
  root.addHandler(console)
  # TensorFlow's logger prints to stderr by itself; route it through root.
  tf_logger = tf.get_logger()
  for handler in list(tf_logger.handlers):
    tf_logger.removeHandler(handler)
  tf_logger.propagate = True


def run(config: RunConfig, quiet: bool = False) -> Dict[str, Any]:
  """Runs the whole pipeline; returns the summary of what it produced.

  The input directory is checked first, so that a wrong path fails at once
  with the path in the message. `quiet` limits the console to errors.
  """
  # Imported here: TFX is slow to import and `recsys --help` should not wait.
  # pylint: disable=import-outside-toplevel
  from pipeline.dag.pipeline import create_ingestion_pipeline, create_pipeline

  # The resolved feature config is what the run records and uses.
  config = config.with_data_features()
  connection = metadata.connection_config(config)
  if quiet:
    quiet_console()

  _write(config.run_config_path, config.to_json())
  started = time.monotonic()
  # Tells `recsys runs` that a run's unfinished step is still running, not
  # interrupted (its process killed).
  _write(config.running_path, json.dumps({
      "pid": os.getpid(), "host": socket.gethostname(),
      "started_ms": int(time.time() * 1000)}))
  backfill = []
  try:
    with scratch_tempdir() as scratch:
      for span in earlier_spans(config):
        print(f"[recsys] span {span}: ingesting (an earlier span of the "
              "window: once per span)", flush=True)
        ingested = _run_dag(
            config, connection, scratch,
            create_ingestion_pipeline(config, span, metadata=connection),
            ingested_span=span)
        backfill.append({"span": span, "components": [
            dataclasses.asdict(r) for r in ingested.runs]})
      base_model = warm_start_model(config)
      if base_model:
        print(f"[recsys] Trainer: warm start from {base_model} (the latest "
              "blessed model of earlier spans)", flush=True)
      progress = _run_dag(config, connection, scratch,
                          create_pipeline(config, metadata=connection,
                                          base_model_uri=base_model))
  finally:
    tf.io.gfile.remove(config.running_path)
  summary = outputs.summarize(config)
  summary["config"] = config
  summary["seconds"] = time.monotonic() - started
  summary["components"] = [dataclasses.asdict(r) for r in progress.runs]
  summary["backfill"] = backfill
  return summary


def ingest(config: RunConfig, span: int) -> List[Dict[str, Any]]:
  """Ingests `span` of config's data directory alone (ExampleGen and
  StatisticsGen, as a run backfills an earlier span); -> the components'
  timings."""
  from pipeline.dag.pipeline import create_ingestion_pipeline  # pylint: disable=import-outside-toplevel
  config = config.with_data_features()
  connection = metadata.connection_config(config)
  with scratch_tempdir() as scratch:
    progress = _run_dag(
        config, connection, scratch,
        create_ingestion_pipeline(config, span, metadata=connection),
        ingested_span=span)
  return [dataclasses.asdict(r) for r in progress.runs]


def earlier_spans(config: RunConfig) -> List[int]:
  """The spans before the newest (which the pipeline's own ExampleGen
  ingests) that the run reads: those of data.span_window, and the previous
  span, whose statistics the newest is checked against for drift. Each is
  ingested by a run of the ExampleGen and StatisticsGen alone first, a cache
  hit once done (components/lib/spans.py). None for a flat directory."""
  numbers = sorted(spans.span_dirs(config.data.data_dir))
  window = numbers[-config.data.span_window:] if config.data.span_window else (
      numbers)
  return sorted(set(window[:-1]) | set(numbers[-2:-1]))


def warm_start_model(config: RunConfig) -> Optional[str]:
  """What the retrieval Trainer starts from (train.warm_start): the latest
  blessed model trained on spans before the newest, found in MLMD before
  the run (the pipeline imports it, so that a rerun over the same spans
  starts from the same model and is a cache hit). None for a flat
  directory: a run over the same data trains as it did."""
  newest = spans.newest_span(config.data.data_dir)
  if not config.train.warm_start or newest is None:
    return None
  return outputs.warm_start_model(config, newest)


def _run_dag(config: RunConfig, connection, scratch: str,
             dag, ingested_span: Optional[int] = None) -> ProgressHandler:
  """Runs `dag` on config.runner with TFX's log in run.log and one console
  line per component; returns the per-component timings. `ingested_span`:
  the run ingests that span alone (create_ingestion_pipeline), which its
  pipeline_run context records."""
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel

  # TFX logs through absl at INFO: everything to run.log, and the component
  # start/finish records to the console through ProgressHandler. The log is
  # written locally, and copied at the end when the output is on storage.
  log_path = config.log_path
  local_log = (os.path.join(scratch, "run.log") if is_uri(log_path)
               else log_path)
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
  started_ms = int(time.time() * 1000)
  try:
    dag_runner(config.runner).run(dag)
  finally:
    _record_run_config(config, connection, started_ms, ingested_span)
    logging.getLogger("absl").removeHandler(progress)
    root.removeHandler(log_file)
    log_file.close()
    root.setLevel(saved_level)
    absl_logging.set_verbosity(saved_verbosity)
    if local_log != log_path:
      _copy(local_log, log_path)
    _write(config.timings_path, json.dumps(
        [dataclasses.asdict(r) for r in progress.runs], indent=2))
    _release_loaded_models()
  return progress


class _Placeholder:
  """A weak-referenceable object for Beam's `Shared` cache."""


def _release_loaded_models() -> None:
  """Frees the models the in-process steps loaded. Beam's `Shared` cache
  keeps the last object any step acquired (TFMA's model) alive; left there,
  it is freed at interpreter shutdown, when TensorFlow is half torn down,
  and prints an ignored exception per function ("AtomicFunction.__del__").
  Acquiring a placeholder through a new handle takes that slot."""
  shared.Shared().acquire(_Placeholder)
  gc.collect()


def _record_run_config(config: RunConfig, connection, started_ms: int,
                       ingested_span: Optional[int] = None) -> None:
  """Puts the resolved config on the pipeline_run context of the run that
  started at `started_ms` (even a failed one), so that each run in MLMD says
  which settings it ran with, while every step sees only its part; and,
  for a run that ingests one span alone, which."""
  store = metadata_store.MetadataStore(connection)
  _, found = outputs.pipeline_runs(config, store)
  ours = [context for context, _ in found
          if context.create_time_since_epoch >= started_ms]
  if ours:
    context = ours[-1]
    context.custom_properties[outputs.RUN_CONFIG_PROPERTY].string_value = (
        config.to_json())
    if ingested_span is not None:
      context.custom_properties[outputs.INGESTED_SPAN_PROPERTY].int_value = (
          ingested_span)
    store.put_contexts([context])


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
