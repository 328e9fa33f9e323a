"""`recsys report --html`: the report as one self-contained HTML file.

The text report's tables, and plots drawn with matplotlib into inline PNGs
(no file or network access needed to view it): HR@k for k = 1..100, HR@10
per slice, training and eval loss from the Trainer's TensorBoard logs, the
items' train popularity (TFT's counts vocabulary), the test users'
history lengths (the sessionized test split), and for the ranking stage the
rating model's loss and the two-stage HR@10 / NDCG@10 against N.
"""
import base64
import html
import io
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from components.lib import features as F
from components.model.export import signature_names as names
from components.user_modules import evaluation
from pipeline.results import report

# Colours of the models, the same in every plot; the ranker's two stages
# are measured against this run's retrieval model, retrieval alone.
COLOURS = {"model": "#1f77b4", "most popular": "#ff7f0e",
           "latest blessed": "#2ca02c", "retrieval alone": "#1f77b4",
           "two stages": "#9467bd"}


def _png(figure) -> str:
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  plt.close(figure)
  return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot():
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def _models(roles: Dict[str, Any], metric: str) -> Dict[str, Any]:
  """{model label: value of `metric`} for the models an evaluation ranked."""
  found = {
      "model": roles.get(evaluation.CANDIDATE, {}).get(names.SCORES, {}),
      "most popular": roles.get(evaluation.CANDIDATE, {}).get(
          names.POPULARITY_SCORES, {}),
      "latest blessed": roles.get(evaluation.BASELINE, {}).get(
          names.SCORES, {})}
  return {label: metrics[metric] for label, metrics in found.items()
          if metrics.get(metric) is not None}


def hit_rate_curve(found: Dict[str, Any]) -> Optional[str]:
  curves = _models((found.get("slices") or {}).get((), {}),
                   evaluation.HIT_RATE_CURVE)
  if not curves:
    return None
  plt = _pyplot()
  figure, axes = plt.subplots(figsize=(7, 4))
  for label, values in curves.items():
    axes.plot(np.arange(1, len(values) + 1), values, label=label,
              color=COLOURS[label])
  axes.set(xlabel="k", ylabel="HR@k", xlim=(1, len(next(iter(
      curves.values())))), ylim=(0, None), title="HR@k on the test split")
  axes.grid(alpha=0.3)
  axes.legend()
  return _png(figure)


def _slice_bars(rows, models: Callable[[Dict[str, Any]], Dict[str, float]],
                ylabel: str) -> Optional[str]:
  """One bar chart per slice feature of `rows` ((feature, value, roles)),
  a bar per model that `models(roles)` gives a value."""
  if not rows:
    return None
  features: Dict[str, List[Tuple[str, Dict]]] = {}
  for feature, value, roles in rows:
    features.setdefault(feature, []).append((value, roles))
  plt = _pyplot()
  figure, axes_list = plt.subplots(len(features), 1, squeeze=False,
                                   figsize=(8, 2.6 * len(features)))
  for axes, (feature, values) in zip(axes_list[:, 0], features.items()):
    per_model = [models(roles) for _, roles in values]
    labels = [label for label in COLOURS if any(label in m for m in per_model)]
    width = 0.8 / len(labels)
    positions = np.arange(len(values))
    for i, label in enumerate(labels):
      axes.bar(positions + (i - (len(labels) - 1) / 2) * width,
               [m.get(label, 0.0) for m in per_model], width, label=label,
               color=COLOURS[label])
    axes.set_xticks(positions, [f"{value}\n(n={report.count(roles)})"
                                for value, roles in values])
    axes.set(ylabel=ylabel, title=feature)
    axes.grid(axis="y", alpha=0.3)
  axes_list[0, 0].legend(loc="upper left", bbox_to_anchor=(1, 1))
  figure.tight_layout()
  return _png(figure)


def slice_bars(found: Dict[str, Any]) -> Optional[str]:
  return _slice_bars(report.slice_rows(found),
                     lambda roles: _models(roles, "hit_rate@10"), "HR@10")


def ranker_slice_bars(found: Dict[str, Any]) -> Optional[str]:
  """NDCG@10 of the two stages beside retrieval alone (TFMA's baseline of
  the ranker's evaluation), overall and per slice."""
  stage = found.get("ranker") or {}
  overall = (stage.get("slices") or {}).get(())
  if not overall:
    return None

  def models(roles):
    found_values = {
        "retrieval alone": roles.get(evaluation.BASELINE, {}),
        "two stages": roles.get(evaluation.CANDIDATE, {})}
    return {label: role[names.SCORES]["ndcg@10"]
            for label, role in found_values.items()
            if role.get(names.SCORES, {}).get("ndcg@10") is not None}
  return _slice_bars([("overall", "all users", overall)] +
                     report.slice_rows(stage), models, "NDCG@10")


def _scalars(log_dir: str, tag: str) -> List[Tuple[int, float]]:
  """(step, value) of a scalar Keras wrote to TensorBoard under log_dir."""
  # pylint: disable=import-outside-toplevel
  from tensorboard.backend.event_processing import event_accumulator
  accumulator = event_accumulator.EventAccumulator(
      log_dir, size_guidance={event_accumulator.TENSORS: 0})
  accumulator.Reload()
  if tag not in accumulator.Tags().get("tensors", []):
    return []
  return [(e.step, float(tf.make_ndarray(e.tensor_proto)))
          for e in accumulator.Tensors(tag)]


def loss_curves(found: Dict[str, Any]) -> Optional[str]:
  """Train loss over steps (every TENSORBOARD_EVERY batches) beside the
  train and eval loss per epoch."""
  log_dir = found.get("tensorboard_uri")
  if not log_dir:
    return None
  train = _scalars(os.path.join(log_dir, "train"), "epoch_loss")
  validation = _scalars(os.path.join(log_dir, "validation"), "epoch_loss")
  batches = _scalars(os.path.join(log_dir, "train"), "batch_loss")
  if not train:
    return None
  plt = _pyplot()
  figure, (by_step, by_epoch) = plt.subplots(1, 2, figsize=(10, 4))
  if batches:
    by_step.plot([s for s, _ in batches], [v for _, v in batches],
                 color=COLOURS["model"])
  by_step.set(xlabel="training step", ylabel="loss",
              title="Train loss over steps")
  for points, label, style in ((train, "train", "o-"),
                               (validation, "eval split", "s-")):
    if points:
      by_epoch.plot([s + 1 for s, _ in points], [v for _, v in points],
                    style, label=label)
  by_epoch.set(xlabel="epoch", ylabel="loss", title="Loss per epoch")
  by_epoch.legend()
  for axes in (by_step, by_epoch):
    axes.grid(alpha=0.3)
  figure.tight_layout()
  return _png(figure)


def item_counts(transform_graph_uri: str) -> List[int]:
  """Train counts of the items, most frequent first (TFT's counts
  vocabulary, components/user_modules/transform.py)."""
  paths = tf.io.gfile.glob(os.path.join(transform_graph_uri, "transform_fn",
                                       "assets", "*_counts"))
  counts = []
  for path in paths[:1]:
    with tf.io.gfile.GFile(path, "rb") as f:
      counts = [int(float(line.split(b" ", 1)[0]))
                for line in f.read().splitlines() if line]
  return sorted(counts, reverse=True)


def popularity(found: Dict[str, Any]) -> Optional[str]:
  uri = found.get("transform_graph_uri")
  counts = item_counts(uri) if uri else []
  if not counts:
    return None
  plt = _pyplot()
  figure, axes = plt.subplots(figsize=(7, 4))
  ranks = np.arange(1, len(counts) + 1)
  axes.loglog(ranks, counts, color=COLOURS["model"])
  config = found.get("config")
  if config is not None:
    share = np.cumsum(counts) / np.sum(counts)
    for edge, name in zip(config.eval.popularity_shares, ("head", "torso")):
      end = int(np.searchsorted(share, edge)) + 1
      axes.axvline(end, color="grey", linestyle="--")
      axes.annotate(f"{name} ends ({edge:.0%})", (end, counts[0]),
                    rotation=90, va="top", ha="right", fontsize=8)
  axes.set(xlabel="item rank by train count", ylabel="train interactions",
           title=f"Item popularity ({len(counts)} items in the vocabulary)")
  axes.grid(alpha=0.3)
  return _png(figure)


def history_lengths(sessions_uri: str) -> List[int]:
  """Interactions before each test target (one per test user)."""
  files = tf.io.gfile.glob(os.path.join(sessions_uri, "Split-test", "*"))
  lengths = []
  for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    lengths.append(len(feature[F.HISTORY_ITEM_ID].bytes_list.value))
  return lengths


def history_histogram(found: Dict[str, Any]) -> Optional[str]:
  uri = found.get("sessions_uri")
  lengths = history_lengths(uri) if uri else []
  if not lengths:
    return None
  plt = _pyplot()
  figure, axes = plt.subplots(figsize=(7, 4))
  bins = np.unique(np.geomspace(1, max(lengths) + 1, 30).astype(int))
  axes.hist(lengths, bins=bins, color=COLOURS["model"])
  axes.set_xscale("log")
  axes.set(xlabel="interactions before the test target", ylabel="users",
           title=f"History length of the {len(lengths)} test users "
           f"(median {int(np.median(lengths))})")
  axes.grid(alpha=0.3)
  return _png(figure)


def rating_loss_curves(found: Dict[str, Any]) -> Optional[str]:
  """The rating model's train and eval loss (its TensorBoard logs)."""
  return loss_curves(found["ranking"]) if found.get("ranking") else None


def two_stage_curves(found: Dict[str, Any]) -> Optional[str]:
  """HR@10 and NDCG@10 of the retrieval top N re-ordered by rating, against
  N, beside retrieval alone."""
  two = found.get("two_stage")
  if not two:
    return None
  sizes = sorted(int(n) for n in two["two_stage"])
  plt = _pyplot()
  figure, axes_list = plt.subplots(1, 2, figsize=(10, 4))
  for axes, metric, label in zip(axes_list, ("hit_rate@10", "ndcg@10"),
                                 ("HR@10", "NDCG@10")):
    axes.plot(sizes, [two["two_stage"][str(n)][metric] for n in sizes], "o-",
              color=COLOURS["model"], label="top N re-ordered by rating")
    axes.axhline(two["retrieval"][metric], color=COLOURS["latest blessed"],
                 linestyle="--", label="retrieval alone")
    axes.set(xlabel="N (retrieval candidates)", ylabel=label,
             title=f"{label}, {two['users']} test users")
    axes.set_xscale("log")
    axes.grid(alpha=0.3)
  axes_list[0].legend()
  figure.tight_layout()
  return _png(figure)


PLOTS = (
    ("hit-rate-curve", "HR@k for k = 1..100", hit_rate_curve),
    ("slices", "HR@10 per slice", slice_bars),
    ("loss", "Training and eval loss", loss_curves),
    ("popularity", "Item popularity", popularity),
    ("history-length", "History lengths", history_histogram),
    ("ranker", "Two stages: NDCG@10 of retrieval then the next-item ranker, "
     "beside retrieval alone, per slice", ranker_slice_bars),
    ("rating-loss", "Rating model: training and eval loss (MSE)",
     rating_loss_curves),
    ("two-stage", "Retrieval's top N re-ordered by predicted rating",
     two_stage_curves),
)


def render(found: Dict[str, Any]) -> str:
  """The HTML document: the text report's sections, then the plots."""
  text = report.format_text(found)
  figures = []
  for plot_id, title, draw in PLOTS:
    image = draw(found)
    if image is None:
      figures.append(f'<p class="missing">{html.escape(title)}: no data in '
                     "this run's artifacts.</p>")
      continue
    figures.append(
        f'<figure id="{plot_id}"><img class="plot" alt="{html.escape(title)}"'
        f' src="data:image/png;base64,{image}"><figcaption>'
        f"{html.escape(title)}</figcaption></figure>")
  run = found["run"]["run"]
  return "\n".join([
      "<!DOCTYPE html>",
      '<html lang="en"><head><meta charset="utf-8">',
      f"<title>recsys report: run {html.escape(run)}</title>",
      "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;"
      "color:#222}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:85%}"
      "figure{margin:2em 0}img.plot{max-width:100%}"
      "figcaption{color:#555}.missing{color:#a00}</style>",
      "</head><body>",
      f"<h1>recsys report: run {html.escape(run)}</h1>",
      f"<pre>{html.escape(text)}</pre>",
      "<h2>Plots</h2>",
      *figures,
      "</body></html>", ""])


def write(found: Dict[str, Any], path: str) -> None:
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(render(found))
