"""`recsys runs`: one line per pipeline run, read from the run's MLMD store.

Every run of the DAG (LocalDagRunner or BeamDagRunner) is a `pipeline_run`
context in ML Metadata; its executions (run or served from the cache) and
their artifacts say which config it ran (the Pusher's recorded run_config),
how the model scored (the Evaluator's output; the rating model's test RMSE
when the pipeline has the ranking stage), whether it was blessed and where
it was pushed.
"""
import datetime
import os
from typing import Any, Dict, List, Optional, Tuple

from pipeline import nodes
from pipeline import runner
from pipeline.config import ConfigError, RunConfig, from_json

_PUSHER_PROPERTY = "run_config"


def run_row(store, run, executions) -> Dict[str, Any]:
  from components import rating_serving, serving  # pylint: disable=import-outside-toplevel
  outputs = runner.run_outputs(store, executions)
  result = runner.outcome(outputs)
  rating = runner.outcome(outputs, nodes.RANKING).get("metrics", {})
  row: Dict[str, Any] = {
      "run": run.name,
      "started": datetime.datetime.fromtimestamp(
          run.create_time_since_epoch / 1000, datetime.timezone.utc
      ).isoformat(timespec="seconds"),
      "components": len(executions),
      "cached": sum(e.last_known_state == e.CACHED for e in executions),
      "digest": None, "encoder": None,
      "hit_rate@10": result.get("metrics", {}).get(serving.SCORES, {}).get(
          "hit_rate@10"),
      "rmse": rating.get(rating_serving.RATING, {}).get("rmse"),
      "blessed": result.get("blessed"), "pushed": result.get("pushed")}
  recorded = [e.custom_properties[_PUSHER_PROPERTY].string_value
              for e in executions if _PUSHER_PROPERTY in e.custom_properties]
  if recorded:
    config = from_json(recorded[0])
    row["digest"], row["encoder"] = config.digest(), config.model.encoder
  return row


def pipeline_runs(config: RunConfig) -> Tuple[Any, List[Tuple[Any, list]]]:
  """The MLMD store and the runs of `config`'s pipeline in it, oldest first,
  each as (pipeline_run context, its executions)."""
  if config.metadata.backend == "sqlite" and not os.path.exists(
      config.metadata_path):
    raise ConfigError(f"no metadata store at {config.metadata_path}: no "
                      "pipeline has run with this output directory")
  store = runner.open_store(config)
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


def list_runs(config: RunConfig) -> List[Dict[str, Any]]:
  """One row per run of `config`'s pipeline in its MLMD store, oldest first."""
  store, found = pipeline_runs(config)
  return [run_row(store, run, executions) for run, executions in found]


def _cell(value: Optional[Any]) -> str:
  if value is None:
    return "-"
  if isinstance(value, bool):
    return "yes" if value else "no"
  if isinstance(value, float):
    return f"{value:.4f}"
  return str(value)


def format_runs(rows: List[Dict[str, Any]]) -> str:
  """A fixed-width table, one line per run."""
  header = ["run", "started (UTC)", "config", "encoder", "HR@10", "blessed",
            "rating RMSE", "cached", "pushed"]
  lines = [[_cell(r["run"]), _cell(r["started"]), _cell(r["digest"]),
            _cell(r["encoder"]),
            _cell(r["hit_rate@10"]), _cell(r["blessed"]), _cell(r["rmse"]),
            f"{r['cached']}/{r['components']}", _cell(r["pushed"])]
           for r in rows]
  widths = [max(len(x) for x in column) for column in zip(header, *lines)]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                   for line in [header] + lines)
