"""`recsys bench --two-stage`: retrieval alone against retrieval followed by
the next-item ranker, from one pipeline run on a data set.

The run (the best retrieval model of the on-device bench, the quality
profile's attention encoder adapted to the data as `recsys run` adapts it,
and the ranker with its defaults) trains the retrieval model, the same model without the ranker's labels
(the candidates of the ranker's train lists: the leakage rule, README
"Two stages") and the ranker. The table's rows, all on the test split
under ../shared/PROTOCOL.md:

* retrieval alone and the two stages as TFMA evaluated the SavedModels (the
  ranker's Evaluator, whose baseline is retrieval alone);
* the same through the pushed TFLite files, as an app chains them
  (file_evaluation.py);
* training minutes of each model, file sizes, and latency: both files'
  `invoke()` over retrieval's alone, and over the reference workload, the
  median over fresh `recsys latency --two-stage` processes (as the encoder
  bench times a model: a process holding a pipeline run times slower).
"""
import json
import os
import statistics
import time
from typing import Any, Dict, List

from components.model.export import signature_names as names
from components.user_modules.evaluation import REPORTED_METRICS
from pipeline.bench.latency import in_fresh_processes
from pipeline.bench.machine import machine
from pipeline.bench.ondevice import LATENCY_PROCESSES, run_model
from pipeline.dag import nodes

# The retrieval model: (encoder, profile) as the on-device bench runs it.
MODEL = ("attention", "quality")
TABLE, RESULT = "two_stage.md", "two_stage.json"
# The targets: the gain of two stages over retrieval alone (test
# split), the ranker file's size and the latency of both files' invoke()
# over retrieval's (1 thread).
MIN_NDCG_GAIN, MIN_HIT_RATE_GAIN = 0.015, 0.01
MAX_RANKER_BYTES, MAX_LATENCY_RATIO = 300_000, 1.5


def latency(retrieval_root: str, queries: int,
            processes: int = LATENCY_PROCESSES) -> Dict[str, Any]:
  """`recsys latency --two-stage` in fresh processes: the median of their
  ratios, and each process's."""
  runs = in_fresh_processes(retrieval_root, queries, processes,
                            two_stage=True)
  found = {"processes": runs}
  for name in ("two_stage_invoke_ratio", "two_stage_end_to_end_ratio",
               "invoke_ratio", "two_stage_invoke_reference_ratio",
               "invoke_median_ms", "ranker_invoke_median_ms"):
    if all(name in r for r in runs):
      found[name] = statistics.median(r[name] for r in runs)
  return found


def _seconds(summary: Dict[str, Any], node: str) -> float:
  (found,) = [c["seconds"] for c in summary["components"]
              if c["name"] == node]
  return found


def _metrics(values: Dict[str, float]) -> Dict[str, float]:
  return {m: values[m] for m in REPORTED_METRICS}


def run(data_dir: str, output_dir: str, queries: int = 1000
        ) -> Dict[str, Any]:
  """Runs the pipeline of MODEL with the ranker on `data_dir` into
  `output_dir` and returns the figures of the table (written as RESULT and
  TABLE)."""
  started = time.monotonic()
  summary = run_model(data_dir, output_dir, *MODEL, ranker=True)
  config = summary["config"]
  ranker = summary.get("ranker", {})
  if not ranker.get("pushed"):
    raise RuntimeError("the ranker was not pushed: "
                       + ranker.get("not_pushed_reason", "not blessed")
                       + f" ({ranker.get('blessing_reason')})")
  result = {
      "date": time.strftime("%Y-%m-%d"), "machine": machine(),
      "data_dir": data_dir, "model": "{}:{}".format(*MODEL),
      "context_length": config.session.max_context_length,
      "candidates": config.ranker.candidates,
      "ranker_max_minutes": config.ranker.max_minutes,
      "retrieval": _metrics(summary["metrics"][names.SCORES]),
      "two_stages": _metrics(ranker["metrics"][names.SCORES]),
      "retrieval_file": _metrics(summary["tflite"]["overall"]),
      "two_stage_files": _metrics(ranker["tflite"]["overall"]),
      "most_popular": _metrics(summary["metrics"][names.POPULARITY_SCORES]),
      "train_minutes": {
          node: _seconds(summary, node) / 60.0
          for node in (nodes.RETRIEVAL.trainer, nodes.CANDIDATE_TRAINER,
                       nodes.CANDIDATE_GEN, nodes.RANKER.trainer)},
      "retrieval_bytes": summary["tflite"]["tflite_bytes"],
      "ranker_bytes": ranker["tflite"]["tflite_bytes"],
      "ranker_training": {k: v for k, v in ranker["training"].items()
                          if k != "history"},
      "pushed": {"retrieval": summary["pushed"], "ranker": ranker["pushed"]},
      "latency": latency(os.path.dirname(summary["pushed"]), queries),
  }
  result["bench_minutes"] = (time.monotonic() - started) / 60.0
  _write(output_dir, result)
  return result


def remeasure(output_dir: str, queries: int = 1000) -> Dict[str, Any]:
  """The latency of the pushed files of an earlier run (its RESULT) again,
  e.g. after a change to how the app side chains them; the rest is kept."""
  with open(os.path.join(output_dir, RESULT), encoding="utf-8") as f:
    result = json.load(f)
  result["latency"] = latency(os.path.dirname(result["pushed"]["retrieval"]),
                              queries)
  result["latency_remeasured"] = time.strftime("%Y-%m-%d")
  _write(output_dir, result)
  return result


def _write(output_dir: str, result: Dict[str, Any]) -> None:
  with open(os.path.join(output_dir, RESULT), "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)
  with open(os.path.join(output_dir, TABLE), "w", encoding="utf-8") as f:
    f.write(markdown(result))


def _row(label: str, values: Dict[str, float], rest: List[str]) -> str:
  return (f"| {label} | " + " | ".join(f"{values[m]:.4f}"
                                       for m in REPORTED_METRICS)
          + " | " + " | ".join(rest) + " |")


def targets(result: Dict[str, Any]) -> List[str]:
  """Each target of the two stages, met or missed, with the figure."""
  gain = {m: result["two_stages"][m] - result["retrieval"][m]
          for m in ("ndcg@10", "hit_rate@10")}
  file_gain = result["two_stage_files"]["ndcg@10"] - result[
      "retrieval_file"]["ndcg@10"]
  ratio = result["latency"].get("two_stage_invoke_ratio")
  checks = [
      (f"NDCG@10 gain {gain['ndcg@10']:+.4f} (files {file_gain:+.4f})",
       gain["ndcg@10"] >= MIN_NDCG_GAIN, f">= +{MIN_NDCG_GAIN}"),
      (f"HR@10 gain {gain['hit_rate@10']:+.4f}",
       gain["hit_rate@10"] >= MIN_HIT_RATE_GAIN, f">= +{MIN_HIT_RATE_GAIN}"),
      (f"ranker file {result['ranker_bytes']:,} bytes",
       result["ranker_bytes"] <= MAX_RANKER_BYTES,
       f"<= {MAX_RANKER_BYTES:,}"),
  ]
  if ratio is not None:
    checks.append((f"both invoke()s {ratio:.2f}x retrieval's",
                   ratio <= MAX_LATENCY_RATIO, f"<= {MAX_LATENCY_RATIO}x"))
  end_to_end = result["latency"].get("two_stage_end_to_end_ratio")
  if end_to_end is not None:
    checks.append((f"end to end {end_to_end:.2f}x retrieval's",
                   end_to_end <= MAX_LATENCY_RATIO,
                   f"<= {MAX_LATENCY_RATIO}x"))
  return [f"- {what}: {'met' if met else 'missed'} (target {bound})"
          for what, met, bound in checks]


def markdown(result: Dict[str, Any]) -> str:
  minutes = result["train_minutes"]
  trained = (f"{minutes[nodes.RETRIEVAL.trainer]:.1f}")
  ranker = (f"{minutes[nodes.CANDIDATE_TRAINER]:.1f} + "
            f"{minutes[nodes.CANDIDATE_GEN]:.1f} + "
            f"{minutes[nodes.RANKER.trainer]:.1f}")
  measured = result["latency"]
  ratio = measured.get("two_stage_invoke_ratio")
  reference = measured.get("two_stage_invoke_reference_ratio")
  end_to_end = measured.get("two_stage_end_to_end_ratio")
  lines = [
      f"{result['date']}, {result['machine']}; test split of "
      f"{result['data_dir']} under PROTOCOL.md; retrieval "
      f"{result['model']} (L={result['context_length']}), the ranker "
      f"re-orders its best {result['candidates']}; the bench took "
      f"{result['bench_minutes']:.0f} min", "",
      "| model | " + " | ".join(REPORTED_METRICS).replace("hit_rate", "HR")
      .replace("ndcg", "NDCG") + " | train min | TFLite bytes | invoke() "
      "ratio |",
      "|" + "---|" * (len(REPORTED_METRICS) + 4),
      _row("retrieval alone (SavedModel, TFMA)", result["retrieval"],
           [trained, "", ""]),
      _row("two stages (SavedModels, TFMA)", result["two_stages"],
           [f"{trained} + {ranker}", "", ""]),
      _row("retrieval model.tflite", result["retrieval_file"],
           ["", f"{result['retrieval_bytes']:,}", "1.00"]),
      _row("two stages, both .tflite files", result["two_stage_files"],
           ["", f"{result['retrieval_bytes']:,} + "
            f"{result['ranker_bytes']:,}",
            f"{ratio:.2f}" if ratio is not None else "–"]),
      _row("most popular", result["most_popular"], ["", "", ""]),
      "",
      "Train minutes of the two stages: retrieval + (retrieval without the "
      "ranker's labels + CandidateGen + the ranker). invoke() ratio: the "
      "median over processes of both files' invoke() over retrieval's, one "
      "thread" + (f"; both files {reference:.2f}x the reference workload"
                  if reference is not None else "")
      + (f"; end to end (Python, TwoStageRecommender.recommend over "
         f"TFLiteRecommender.recommend) {end_to_end:.2f}x"
         if end_to_end is not None else "")
      + (f" (latency measured {result['latency_remeasured']})"
         if result.get("latency_remeasured") else "") + ".",
      "",
      *targets(result),
  ]
  return "\n".join(lines) + "\n"
