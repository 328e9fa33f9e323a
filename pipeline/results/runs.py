"""`recsys runs`: one line per pipeline run, read from the run's MLMD store.

Every run of the DAG (LocalDagRunner or BeamDagRunner) is a `pipeline_run`
context in ML Metadata; its executions (run or served from the cache) and
their artifacts say how the model scored (the Evaluator's output; the rating model's test RMSE
when the pipeline has the ranking stage), whether it was blessed and where
it was pushed; the context itself records the config it ran with.
"""
import datetime
import json
import os
import socket
from typing import Any, Dict, List, Optional

from ml_metadata.proto import metadata_store_pb2
import tensorflow as tf

from components.model.export import signature_names as names
from pipeline.config import RunConfig
from pipeline.dag import nodes
from pipeline.results import outputs


def run_status(store, executions, live: bool, ended: bool = True) -> str:
  """complete; failed in STEP; running in STEP (`live`: the process that
  started the run is still there); or interrupted in STEP, when the
  process was killed (or its machine lost) during STEP, or interrupted
  after STEP when it died between steps (`ended` is False: the runner
  never recorded the run's end)."""
  node_of = outputs.execution_nodes(store, executions)
  for state, status in ((metadata_store_pb2.Execution.FAILED, "failed"),
                        (metadata_store_pb2.Execution.RUNNING,
                         "running" if live else "interrupted"),
                        (metadata_store_pb2.Execution.NEW,
                         "running" if live else "interrupted")):
    stopped = [e for e in executions if e.last_known_state == state]
    if stopped:
      return f"{status} in {node_of.get(stopped[-1].id, '?')}"
  if ended:
    return "complete"
  last = max(executions, key=lambda e: e.id)
  return (f"{'running' if live else 'interrupted'} after "
          f"{node_of.get(last.id, '?')}")


def _with_span(run, status: str) -> str:
  """A run that ingested an earlier span alone says so: "ingested span N"
  when complete, else its status and the span."""
  if outputs.INGESTED_SPAN_PROPERTY not in run.custom_properties:
    return status
  span = run.custom_properties[outputs.INGESTED_SPAN_PROPERTY].int_value
  return (f"ingested span {span}" if status == "complete"
          else f"{status} (ingesting span {span})")


def run_row(store, run, executions, live: bool = False) -> Dict[str, Any]:
  """`live`: the run's process is still running (pipeline/runners/local.py
  RunMarker)."""
  found = outputs.run_outputs(store, executions)
  result = outputs.outcome(found)
  rating = outputs.outcome(found, nodes.RANKING).get("metrics", {})
  ranker = outputs.outcome(found, nodes.RANKER).get("metrics", {})
  config = outputs.recorded_config(run)
  forward = outputs.forward_outcome(found) or {}
  return {
      "run": run.name,
      "started": datetime.datetime.fromtimestamp(
          run.create_time_since_epoch / 1000, datetime.timezone.utc
      ).isoformat(timespec="seconds"),
      "status": _with_span(run, run_status(store, executions, live,
                                           ended=config is not None)),
      "components": len(executions),
      "cached": sum(e.last_known_state == e.CACHED for e in executions),
      "digest": config and config.digest(),
      # An ingestion run trains nothing.
      "encoder": (config and config.model.encoder
                  if outputs.INGESTED_SPAN_PROPERTY not in run.custom_properties
                  else None),
      "hit_rate@10": result.get("metrics", {}).get(names.SCORES, {}).get(
          "hit_rate@10"),
      "tflite_hit_rate@10": result.get("tflite", {}).get("overall", {}).get(
          "hit_rate@10"),
      "forward_hit_rate@10": forward.get("metrics", {}).get(
          names.SCORES, {}).get("hit_rate@10"),
      "forward_span": forward.get("span") if forward.get("metrics") else None,
      # The two stages (retrieval, then the next-item ranker).
      "two_stage_hit_rate@10": ranker.get(names.SCORES, {}).get(
          "hit_rate@10"),
      "rmse": rating.get(names.RATING, {}).get("rmse"),
      "blessed": result.get("blessed"), "pushed": result.get("pushed")}


def list_runs(config: RunConfig) -> List[Dict[str, Any]]:
  """One row per run of `config`'s pipeline in its MLMD store, oldest first."""
  store, found = outputs.pipeline_runs(config)
  live_since = running_since(config)
  return [run_row(store, run, executions, live=live_since is not None and (
      run.create_time_since_epoch >= live_since))
          for run, executions in found]


def running_since(config: RunConfig) -> Optional[int]:
  """When the run in progress in config.output_dir started (ms since the
  epoch), if its process is alive on this machine; else None."""
  if not tf.io.gfile.exists(config.running_path):
    return None
  with tf.io.gfile.GFile(config.running_path) as f:
    marker = json.loads(f.read())
  if marker.get("host") != socket.gethostname():
    return None
  try:
    os.kill(marker["pid"], 0)
  except ProcessLookupError:
    return None
  except PermissionError:  # alive, another user's
    pass
  return marker["started_ms"]


def cell(value: Optional[Any], digits: int = 4) -> str:
  """A table cell: '-' for nothing, yes/no, floats to `digits` places."""
  if value is None:
    return "-"
  if isinstance(value, bool):
    return "yes" if value else "no"
  if isinstance(value, float):
    return f"{value:.{digits}f}"
  return str(value)


def format_runs(rows: List[Dict[str, Any]]) -> str:
  """A fixed-width table, one line per run."""
  header = ["run", "started (UTC)", "status", "config", "encoder", "HR@10",
            "TFLite HR@10", "forward HR@10", "blessed", "two-stage HR@10",
            "rating RMSE",
            "cached", "pushed"]
  lines = [[cell(r["run"]), cell(r["started"]), r["status"],
            cell(r["digest"]),
            cell(r["encoder"]), cell(r["hit_rate@10"]),
            cell(r["tflite_hit_rate@10"]),
            cell(r["forward_hit_rate@10"]) + (
                f" (span {r['forward_span']})"
                if r["forward_span"] is not None else ""),
            cell(r["blessed"]),
            cell(r["two_stage_hit_rate@10"]),
            cell(r["rmse"]),
            f"{r['cached']}/{r['components']}", cell(r["pushed"])]
           for r in rows]
  widths = [max(len(x) for x in column) for column in zip(header, *lines)]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                   for line in [header] + lines)
