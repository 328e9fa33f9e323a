"""`recsys bench --on-device`: the Pareto table of the models a phone can get.

Each (encoder, profile) trains once through the whole pipeline (one output
directory, so ingestion, statistics and, per context length, the sessions
and the Transform are reused from the cache); its on-device SavedModel is
then converted with every serving.quantization, and each file is measured as
it ships:

* bytes of model.tflite;
* quality: the file's own HR@10 and NDCG@10 on the test split through the
  TFLite interpreter (the Pusher's evaluation, components/tflite_pusher/
  file_evaluation.py), beside the SavedModel's TFMA figures;
* `invoke()` time as a ratio to ../shared/ondevice/reference.py's model timed
  in the same process, interleaved, one thread, inputs set before timing, and
  the end-to-end time through TFLiteRecommender (mapping raw ids, invoking,
  dropping the context's items): `recsys latency` in fresh processes, the
  median over LATENCY_PROCESSES of them (pipeline/bench/latency.py).

A row is Pareto-optimal when no other row is at least as small, at least as
fast and at least as good on HR@10, and better on one of them.
"""
import datetime
import json
import os
import shutil
import statistics
import time
from typing import Any, Dict, List, Sequence, Tuple

from components.lib import layout
from components.lib.settings import QUANTIZATIONS
from components.model.export import signature_names as names
from components.model.export import tflite
from pipeline.bench import latency
from pipeline.bench.machine import machine

# (encoder, profile) pairs of the default table: the shipped default
# (attention, ondevice), the smallest (bow, small), the other encoders at
# the default's sizes, and the long-history model.
MODELS = (("attention", "ondevice"), ("bow", "small"), ("cnn", "ondevice"),
          ("gru", "ondevice"), ("attention", "quality"))
LATENCY_PROCESSES = 3
RESULT = "ondevice.json"
TABLE = "ondevice.md"


def run_model(data_dir: str, output_dir: str, encoder: str, profile: str,
              ranker: bool = False) -> Dict[str, Any]:
  """One pipeline run of (encoder, profile), adapted to the data as `recsys
  run` adapts it, with the next-item ranker when `ranker`; -> its
  summary."""
  # pylint: disable=import-outside-toplevel
  from pipeline import adaptive
  from pipeline.config import given_settings, load_config
  from pipeline.runners import local
  values = {"profile": profile, "model": {"encoder": encoder},
            "data": {"data_dir": data_dir}, "output_dir": output_dir,
            "push_dir": os.path.join(output_dir, "serving",
                                     f"{encoder}-{profile}"),
            "ranking": {"enabled": False}, "ranker": {"enabled": ranker},
            # Each model is compared with the others here, not blessed
            # against the previous one.
            "eval": {"max_hit_rate_drop": 1.0}}
  config = adaptive.adapt(load_config(values=values), given_settings(
      values=values))
  summary = local.run(config, quiet=True)
  summary["context_length"] = config.session.max_context_length
  return summary


def _latency(version_dir: str, queries: int) -> Dict[str, float]:
  """`recsys latency` of a version directory in fresh processes."""
  runs = latency.in_fresh_processes(version_dir, queries, LATENCY_PROCESSES)
  if any(r.get("invoke_ratio") is None for r in runs):
    raise RuntimeError("the reference workload (../shared/ondevice/"
                       "reference.py) is missing: no ratio to report")
  return {name: statistics.median(r[name] for r in runs)
          for name in ("invoke_ratio", "invoke_median_ms",
                       "end_to_end_median_ms", "reference_median_ms")}


def file_rows(summary: Dict[str, Any], files_dir: str,
              quantizations: Sequence[str], queries: int
              ) -> List[Dict[str, Any]]:
  """Every quantization of a run's model, converted, evaluated and timed."""
  # pylint: disable=import-outside-toplevel
  from tfx.types import artifact_utils
  from tfx.types import standard_artifacts
  from components.lib import features as F
  from components.tflite_pusher import executor as pusher
  sessions = standard_artifacts.Examples()
  sessions.uri = summary["sessions"]
  sessions.split_names = artifact_utils.encode_split_names(list(F.SPLITS))
  model_dir = os.path.join(summary["model"], layout.TFLITE_DIR)
  rows = []
  for quantization in quantizations:
    target = os.path.join(files_dir, quantization)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    try:
      content = tflite.convert_ondevice(model_dir, quantization)
    except tflite.QuantizationError as e:
      rows.append({"quantization": quantization, "error": str(e)})
      continue
    with open(os.path.join(target, layout.TFLITE_MODEL), "wb") as f:
      f.write(content)
    # What `recsys latency` reads of a pushed version.
    for name in (layout.INPUT_MAPPING, layout.CATALOG):
      shutil.copy(os.path.join(summary["pushed"], name), target)
    found = pusher.evaluate_tflite(target, sessions, target)
    rows.append({"quantization": quantization, "bytes": len(content),
                 "hit_rate@10": found["overall"]["hit_rate@10"],
                 "ndcg@10": found["overall"]["ndcg@10"],
                 **_latency(target, queries)})
  return rows


def pareto(rows: List[Dict[str, Any]]) -> List[bool]:
  """Per row: no other row is as small, as fast and as good, and better in
  one of them (rows with an error are never optimal)."""
  def key(r) -> Tuple[float, float, float]:
    return r["bytes"], r["invoke_ratio"], -r["hit_rate@10"]
  measured = [r for r in rows if "error" not in r]
  optimal = []
  for row in rows:
    if "error" in row:
      optimal.append(False)
      continue
    mine = key(row)
    optimal.append(not any(
        all(a <= b for a, b in zip(key(o), mine)) and key(o) != mine
        for o in measured))
  return optimal


def run(data_dir: str, output_dir: str,
        models: Sequence[Tuple[str, str]] = MODELS,
        quantizations: Sequence[str] = QUANTIZATIONS,
        queries: int = 1000) -> Dict[str, Any]:
  """Every model of `models`, every quantization; the table after each."""
  started = time.monotonic()
  result: Dict[str, Any] = {
      "date": datetime.date.today().isoformat(), "machine": machine(),
      "data_dir": data_dir, "rows": []}
  for encoder, profile in models:
    print(f"[bench] {encoder}, profile {profile}", flush=True)
    summary = run_model(data_dir, output_dir, encoder, profile)
    if not summary.get("pushed"):
      raise RuntimeError(f"{encoder}, {profile}: nothing pushed ("
                         f"{summary.get('not_pushed_reason', 'not blessed')})")
    saved = summary["metrics"][names.SCORES]
    for row in file_rows(summary, os.path.join(
        output_dir, "files", f"{encoder}-{profile}"), quantizations, queries):
      result["rows"].append({
          "encoder": encoder, "profile": profile,
          "context_length": summary["context_length"],
          "saved_model_hit_rate@10": saved["hit_rate@10"],
          "saved_model_ndcg@10": saved["ndcg@10"],
          "train_minutes": summary["training"]["seconds"] / 60.0, **row})
      print(f"[bench]   {row}", flush=True)
    result["bench_minutes"] = (time.monotonic() - started) / 60.0
    write(output_dir, result)
  return result


def write(output_dir: str, result: Dict[str, Any]) -> None:
  with open(os.path.join(output_dir, RESULT), "w") as f:
    json.dump(result, f, indent=2)
  with open(os.path.join(output_dir, TABLE), "w") as f:
    f.write(markdown(result))


def markdown(result: Dict[str, Any]) -> str:
  lines = [f"{result['date']}, {result['machine']}; test split of "
           f"{result['data_dir']} under PROTOCOL.md, the TFLite file's own "
           "metrics; invoke() as a ratio to ../shared/ondevice/reference.py's "
           "model (one thread, interleaved), end to end through "
           "TFLiteRecommender; * Pareto-optimal (bytes, invoke, HR@10); the "
           f"bench took {result.get('bench_minutes', 0):.0f} min", "",
           "| encoder | profile (context) | quantization | bytes | invoke × "
           "reference | end to end ms (invoke ms) | HR@10 | NDCG@10 | "
           "SavedModel HR@10 | train min |", "|" + "---|" * 10]
  errors = []
  for row, optimal in zip(result["rows"], pareto(result["rows"])):
    head = (f"| {row['encoder']} | {row['profile']} ({row['context_length']}) "
            f"| {row['quantization']}{' *' if optimal else ''} |")
    tail = (f" {row['saved_model_hit_rate@10']:.4f} | "
            f"{row['train_minutes']:.1f} |")
    if "error" in row:
      errors.append(f"[{len(errors) + 1}] {row['encoder']}, {row['profile']}, "
                    f"{row['quantization']}: {row['error']}")
      lines.append(f"{head} not converted [{len(errors)}] | – | – | – | – |"
                   f"{tail}")
      continue
    lines.append(
        f"{head} {row['bytes']:,} | {row['invoke_ratio']:.2f} | "
        f"{row['end_to_end_median_ms']:.3f} ({row['invoke_median_ms']:.3f}) | "
        f"{row['hit_rate@10']:.4f} | {row['ndcg@10']:.4f} |{tail}")
  return "\n".join(lines + ([""] + errors if errors else [])) + "\n"
