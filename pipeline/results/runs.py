"""`recsys runs`: one line per pipeline run, read from the run's MLMD store.

Every run of the DAG (LocalDagRunner or BeamDagRunner) is a `pipeline_run`
context in ML Metadata; its executions (run or served from the cache) and
their artifacts say how the model scored (the Evaluator's output; the rating model's test RMSE
when the pipeline has the ranking stage), whether it was blessed and where
it was pushed; the context itself records the config it ran with.
"""
import datetime
from typing import Any, Dict, List, Optional

from components.model.export import signature_names as names
from pipeline.config import RunConfig
from pipeline.dag import nodes
from pipeline.results import outputs


def run_row(store, run, executions) -> Dict[str, Any]:
  found = outputs.run_outputs(store, executions)
  result = outputs.outcome(found)
  rating = outputs.outcome(found, nodes.RANKING).get("metrics", {})
  config = outputs.recorded_config(run)
  return {
      "run": run.name,
      "started": datetime.datetime.fromtimestamp(
          run.create_time_since_epoch / 1000, datetime.timezone.utc
      ).isoformat(timespec="seconds"),
      "components": len(executions),
      "cached": sum(e.last_known_state == e.CACHED for e in executions),
      "digest": config and config.digest(),
      "encoder": config and config.model.encoder,
      "hit_rate@10": result.get("metrics", {}).get(names.SCORES, {}).get(
          "hit_rate@10"),
      "tflite_hit_rate@10": result.get("tflite", {}).get("overall", {}).get(
          "hit_rate@10"),
      "rmse": rating.get(names.RATING, {}).get("rmse"),
      "blessed": result.get("blessed"), "pushed": result.get("pushed")}


def list_runs(config: RunConfig) -> List[Dict[str, Any]]:
  """One row per run of `config`'s pipeline in its MLMD store, oldest first."""
  store, found = outputs.pipeline_runs(config)
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
  header = ["run", "started (UTC)", "config", "encoder", "HR@10",
            "TFLite HR@10", "blessed", "rating RMSE", "cached", "pushed"]
  lines = [[_cell(r["run"]), _cell(r["started"]), _cell(r["digest"]),
            _cell(r["encoder"]), _cell(r["hit_rate@10"]),
            _cell(r["tflite_hit_rate@10"]), _cell(r["blessed"]),
            _cell(r["rmse"]),
            f"{r['cached']}/{r['components']}", _cell(r["pushed"])]
           for r in rows]
  widths = [max(len(x) for x in column) for column in zip(header, *lines)]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                   for line in [header] + lines)
