"""Latency of a pushed retrieval model through the TFLite interpreter, one
query at a time as on a device (`recsys latency`, and the bench's column),
alone or followed by its next-item ranker (`recsys latency --two-stage`).

Two figures per query: `invoke()` alone (what the graph costs, inputs set
beforehand, as an app that fills its buffers and then calls the
interpreter) and end to end through `TFLiteRecommender.recommend` (input
preparation in Python, the call, reading and decoding the outputs). Absolute
times on a shared machine move between runs, so `invoke()` is also given as
a ratio to the fixed reference workload of `../shared/ondevice/reference.py`
(the TFLite on-device reference's LSTM shape), timed in the same process,
interleaved query by query, on one thread, each model with new inputs per
query (ReferenceWorkload).

With the ranker (TwoStageRecommender), each query also times the ranker's
`invoke()` on that query's candidates and the two stages end to end
(`TwoStageRecommender.recommend`: retrieval, the best candidates picked from
its catalog scores, the ranker); the two stages' cost is given as ratios
to retrieval alone: invoke() of both files over retrieval's, and end to end
over end to end.
"""
import contextlib
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from components.lib import layout
from components.model.export.tflite import (TFLiteRanker, TFLiteRecommender,
                                            TwoStageRecommender)
from pipeline import PROJECT_ROOT

REFERENCE_SCRIPT = os.path.join(os.path.dirname(PROJECT_ROOT), "shared",
                                "ondevice", "reference.py")


def _timed_ms(call: Callable[[], Any]) -> float:
  started = time.perf_counter()
  call()
  return (time.perf_counter() - started) * 1000.0


def _spread(name: str, times: List[float]) -> Dict[str, float]:
  """Median, p90 (nearest rank) and max."""
  times = sorted(times)
  return {f"{name}_median_ms": statistics.median(times),
          f"{name}_p90_ms": times[math.ceil(0.9 * len(times)) - 1],
          f"{name}_max_ms": times[-1]}


class ReferenceWorkload:
  """The reference model's interpreter, given fresh inputs per query as the
  measured model is: a model's time depends on its inputs (top-k over the
  catalog, the rows gathered), and inputs repeated call after call make it
  look faster (a model of this project: 0.86x the reference with one history
  repeated, 1.8x with a new one per call against the reference's repeated
  ones)."""

  def __init__(self, interpreter: tf.lite.Interpreter, index_bound: int,
               seed: int = 0):
    self.interpreter = interpreter
    self._index_bound = index_bound
    self._rng = np.random.default_rng(seed)
    self._inputs = interpreter.get_input_details()

  def next_query(self) -> None:
    """New inputs drawn as the script draws its own: indices below the
    bound (valid in every table of the model), numbers in [0, 1)."""
    for d in self._inputs:
      if np.issubdtype(d["dtype"], np.integer):
        value = self._rng.integers(0, self._index_bound, size=d["shape"])
      else:
        value = self._rng.random(size=d["shape"])
      self.interpreter.set_tensor(d["index"], value.astype(d["dtype"]))

  def invoke(self) -> None:
    self.interpreter.invoke()


@contextlib.contextmanager
def reference_workload(script: str = REFERENCE_SCRIPT
                       ) -> Iterator[Optional[ReferenceWorkload]]:
  """The reference model built by `script` in a temporary directory, on one
  thread, prepared by the script itself; None when the script is absent
  (e.g. outside the project's checkout)."""
  if not os.path.exists(script):
    yield None
    return
  spec = importlib.util.spec_from_file_location("ondevice_reference", script)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  with tempfile.TemporaryDirectory(prefix="recsys-reference-") as tmp:
    path = os.path.join(tmp, "reference.tflite")
    module.build(path)
    yield ReferenceWorkload(
        module._prepared(path, np.random.default_rng(0)),  # pylint: disable=protected-access
        index_bound=len(module.GENRES))


def measure_latency(recommender: TFLiteRecommender,
                    histories: Sequence[Sequence[str]],
                    reference: Optional[ReferenceWorkload] = None,
                    two_stages: Optional[TwoStageRecommender] = None
                    ) -> Dict[str, float]:
  """Milliseconds per query, one query at a time (as on a device): each
  query's `invoke()` with its inputs set beforehand, then the same query
  end to end; the reference's `invoke()` on new inputs interleaved when
  given; with `two_stages` (whose retrieval is `recommender`) the two
  stages end to end, then the ranker's `invoke()` on that query's
  candidates (see the module's docstring)."""
  recommender.recommend(histories[0])  # the first call warms the kernels
  if two_stages is not None:
    two_stages.recommend(histories[0])
  times: Dict[str, List[float]] = {}
  for history in histories:
    if reference is not None:
      reference.next_query()
      times.setdefault("reference", []).append(_timed_ms(reference.invoke))
    recommender.set_inputs(history)
    times.setdefault("invoke", []).append(
        _timed_ms(recommender.interpreter.invoke))
    if two_stages is not None:
      times.setdefault("two_stage_end_to_end", []).append(
          _timed_ms(lambda h=history: two_stages.recommend(h)))
      times.setdefault("ranker_invoke", []).append(
          _timed_ms(two_stages.ranker.interpreter.invoke))
    times.setdefault("end_to_end", []).append(
        _timed_ms(lambda h=history: recommender.recommend(h)))
  result = {"queries": len(histories)}
  for name in ("invoke", "end_to_end", "ranker_invoke",
               "two_stage_end_to_end"):
    if name in times:
      result.update(_spread(name, times[name]))
  if two_stages is not None:
    both = [a + b for a, b in zip(times["invoke"], times["ranker_invoke"])]
    result.update(_spread("two_stage_invoke", both))
    result["two_stage_invoke_ratio"] = (result["two_stage_invoke_median_ms"]
                                        / result["invoke_median_ms"])
    result["two_stage_end_to_end_ratio"] = (
        result["two_stage_end_to_end_median_ms"]
        / result["end_to_end_median_ms"])
  if "reference" in times:
    reference_ms = statistics.median(times["reference"])
    result["reference_median_ms"] = reference_ms
    result["invoke_ratio"] = result["invoke_median_ms"] / reference_ms
    if two_stages is not None:
      result["two_stage_invoke_reference_ratio"] = (
          result["two_stage_invoke_median_ms"] / reference_ms)
  return result


def measure_pushed_model(version_dir: str, queries: int, threads: int = 1,
                         seed: int = 0, reference_script: str = REFERENCE_SCRIPT,
                         ranker_dir: Optional[str] = None) -> Dict[str, Any]:
  """Latency of a pushed version (followed by the ranker version in
  `ranker_dir`) on random full-length histories drawn from its catalog,
  with its path, size and context length, beside the reference workload
  when its script is there."""
  path = os.path.join(version_dir, layout.TFLITE_MODEL)
  recommender = TFLiteRecommender(path, num_threads=threads)
  two_stages, ranker = None, {}
  if ranker_dir:
    ranker_path = os.path.join(ranker_dir, layout.TFLITE_MODEL)
    two_stages = TwoStageRecommender(
        recommender, TFLiteRanker(ranker_path, num_threads=threads))
    ranker = {"ranker_path": ranker_path,
              "ranker_bytes": os.path.getsize(ranker_path),
              "candidates": two_stages.ranker.candidates}
  with open(os.path.join(version_dir, layout.CATALOG), encoding="utf-8") as f:
    items = sorted(json.load(f))
  rng = np.random.default_rng(seed)
  histories = [list(rng.choice(items, size=recommender.context_length,
                               replace=False)) for _ in range(queries)]
  with reference_workload(reference_script) as reference:
    measured = measure_latency(recommender, histories, reference,
                               two_stages)
  return {"path": path, "bytes": os.path.getsize(path), **ranker,
          "context_length": recommender.context_length,
          "reference": reference_script if reference is not None else None,
          **measured}


def in_fresh_processes(model_dir: str, queries: int, processes: int,
                       two_stage: bool = False) -> List[Dict[str, Any]]:
  """`recsys latency --json` (with `--two-stage`) of a pushed version or
  push root in `processes` fresh processes, one thread, seeds 0, 1, ...:
  a process as an app runs the model, not the bench's own, which holds a
  whole pipeline run and times the same model up to twice as slow."""
  runs = []
  for seed in range(processes):
    measured = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "latency", "--model",
         model_dir, "--queries", str(queries), "--threads", "1", "--json",
         "--seed", str(seed)] + (["--two-stage"] if two_stage else []),
        check=True, capture_output=True, text=True, cwd=PROJECT_ROOT)
    runs.append(json.loads(measured.stdout.strip().splitlines()[-1]))
  return runs
