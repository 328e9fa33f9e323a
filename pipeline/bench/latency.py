"""Latency of a pushed retrieval model through the TFLite interpreter, one
query at a time as on a device (`recsys latency`, and the bench's column)."""
import json
import os
import statistics
import time
from typing import Any, Dict, Sequence

import numpy as np

from components.lib import layout
from components.model.export.tflite import TFLiteRecommender


def measure_latency(recommender: TFLiteRecommender,
                    histories: Sequence[Sequence[str]]) -> Dict[str, float]:
  """Milliseconds per query, one query at a time (as on a device)."""
  recommender.recommend(histories[0])  # first call allocates tensors
  times = []
  for history in histories:
    started = time.perf_counter()
    recommender.recommend(history)
    times.append((time.perf_counter() - started) * 1000.0)
  times.sort()
  return {"queries": len(times), "median_ms": statistics.median(times),
          "p90_ms": times[int(0.9 * (len(times) - 1))], "max_ms": times[-1]}


def measure_pushed_model(version_dir: str, queries: int, threads: int = 1,
                         seed: int = 0) -> Dict[str, Any]:
  """Latency of a pushed version on random full-length histories drawn from
  its catalog, with its path, size and context length."""
  path = os.path.join(version_dir, layout.TFLITE_MODEL)
  recommender = TFLiteRecommender(path, num_threads=threads)
  with open(os.path.join(version_dir, layout.CATALOG), encoding="utf-8") as f:
    items = sorted(json.load(f))
  rng = np.random.default_rng(seed)
  histories = [list(rng.choice(items, size=recommender.context_length,
                               replace=False)) for _ in range(queries)]
  return {"path": path, "bytes": os.path.getsize(path),
          "context_length": recommender.context_length,
          **measure_latency(recommender, histories)}
