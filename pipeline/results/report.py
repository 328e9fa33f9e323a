"""`recsys report`: what one pipeline run produced, from MLMD and its artifacts.

MLMD says which run (a `pipeline_run` context) executed or reused which
component, and which artifacts each wrote; the report reads those artifacts
with the libraries that wrote them: TFDV's statistics and anomalies, the
sessionizer's report, the Trainer's summary, TFMA's metrics and validation
(overall and per slice, the candidate beside the most-popular baseline and,
when there was one, the latest blessed model), and the pushed bundle. `facts`
gathers them once; `format_text` prints them and report_html.py draws them.
"""
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf

from components.lib import features as F
from components.lib import layout
from components.lib import slices
from components.model.export import signature_names as names
from components.sessionize.anomalies import describe
from components.tflite_pusher.executor import read_tflite_evaluation
from components.two_stage_evaluator.executor import read_metrics
from components.user_modules import evaluation
from pipeline.config import ConfigError, RunConfig
from pipeline.dag import nodes
from pipeline.results import outputs
from pipeline.results import runs


def select_run(config: RunConfig, run: str = "latest"):
  """(store, run context, executions) of `run`: 'latest' or a run id as
  `recsys runs` prints it."""
  store, found = outputs.pipeline_runs(config)
  if not found:
    raise ConfigError(f"no runs of pipeline {config.name!r} in the metadata "
                      f"of {config.output_dir}")
  if run == "latest":
    return (store,) + found[-1]
  for context, executions in found:
    if context.name == run:
      return store, context, executions
  known = ", ".join(c.name for c, _ in found[-5:])
  raise ConfigError(f"no run {run!r} of pipeline {config.name!r} (latest "
                    f"runs: {known})")


def _read_json(path: str) -> Optional[Any]:
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def _size(path: str) -> int:
  """Bytes of a file, or of every file under a directory."""
  if not tf.io.gfile.isdir(path):
    return tf.io.gfile.stat(path).length
  return sum(tf.io.gfile.stat(os.path.join(d, f)).length
             for d, _, files in tf.io.gfile.walk(path) for f in files)


def split_uris(artifact) -> Dict[str, str]:
  """{split: its directory} of an MLMD artifact with splits (Examples,
  statistics, anomalies)."""
  names = json.loads(artifact.properties["split_names"].string_value)
  return {name: os.path.join(artifact.uri, f"Split-{name}") for name in names}


def data_facts(statistics, anomalies) -> Dict[str, Any]:
  """Examples, users and items per raw split (TFDV statistics) and the
  validator's anomalies."""
  # pylint: disable=import-outside-toplevel
  import tensorflow_data_validation as tfdv
  from tensorflow_metadata.proto.v0 import anomalies_pb2
  facts: Dict[str, Any] = {"splits": {}, "anomalies": []}
  if statistics is not None:
    for split, uri in split_uris(statistics).items():
      stats = tfdv.load_stats_binary(
          os.path.join(uri, "FeatureStats.pb")).datasets[0]
      row = {"examples": stats.num_examples}
      for name, key in ((F.USER_ID, "users"), (F.ITEM_ID, "items")):
        feature = tfdv.get_feature_stats(stats, tfdv.FeaturePath([name]))
        row[key] = feature.string_stats.unique
      facts["splits"][split] = row
  if anomalies is not None:
    for split, uri in split_uris(anomalies).items():
      path = os.path.join(uri, "SchemaDiff.pb")
      if tf.io.gfile.exists(path):
        found = anomalies_pb2.Anomalies()
        with tf.io.gfile.GFile(path, "rb") as f:
          found.ParseFromString(f.read())
        facts["anomalies"] += [f"[{split}] {line}" for line in
                               describe(found)]
  return facts


def _stage_facts(node_outputs, stage: nodes.Stage) -> Dict[str, Any]:
  """A model stage's model, training, evaluation, blessing and push."""

  def output(node: str, key: str):
    return node_outputs.get(node, {}).get(key)

  found: Dict[str, Any] = {}
  model = output(stage.trainer, "model")
  found["model_uri"] = model and model.uri
  found["training"] = model and _read_json(os.path.join(model.uri,
                                                        layout.TRAINING_SUMMARY))
  model_run = output(stage.trainer, "model_run")
  found["tensorboard_uri"] = model_run and model_run.uri
  result = output(stage.evaluator, "evaluation")
  found["evaluation_uri"] = result and result.uri
  found["slices"] = result and evaluation.read_sliced_metrics(result.uri)
  blessing = output(stage.evaluator, "blessing")
  found["blessing"] = blessing and {
      "blessed": bool(outputs.property_value(blessing, "blessed")),
      "reason": evaluation.blessing_reason(result.uri) if result else None,
      "baseline_model": outputs.property_value(blessing, "baseline_model"),
      "baseline_model_id": outputs.property_value(blessing,
                                                  "baseline_model_id")}
  pushed = output(stage.pusher, "pushed_model")
  found["pushed"] = None
  found["tflite"] = pushed and read_tflite_evaluation(pushed.uri)
  found["not_pushed_reason"] = pushed and outputs.property_value(
      pushed, "not_pushed_reason")
  if pushed is not None and outputs.property_value(pushed, "pushed"):
    path = outputs.property_value(pushed, "pushed_destination")
    found["pushed"] = {
        "path": path,
        "version": outputs.property_value(pushed, "pushed_version"),
        "tflite_bytes": _size(os.path.join(path, layout.TFLITE_MODEL)),
        "saved_model_bytes": _size(os.path.join(path, layout.BUNDLE_SAVED_MODEL)),
        "metadata": _read_json(os.path.join(path, layout.BUNDLE_METADATA))}
  return found


def facts(config: RunConfig, run: str = "latest") -> Dict[str, Any]:
  """Everything the report shows about one run."""
  store, context, executions = select_run(config, run)
  found_outputs = outputs.run_outputs(store, executions)

  def output(node: str, key: str):
    return found_outputs.get(node, {}).get(key)

  found: Dict[str, Any] = {"run": runs.run_row(store, context, executions),
                           "output_dir": config.output_dir}
  found["config"] = outputs.recorded_config(context)
  statistics = output("StatisticsGen", "statistics")
  found["statistics_uri"] = statistics and statistics.uri
  found["data"] = data_facts(statistics,
                             output("ExampleValidator", "anomalies"))
  sessions = output("Sessionize", "sessions")
  found["sessions"] = sessions and _read_json(
      os.path.join(sessions.uri, layout.SESSIONIZE_REPORT))
  found["sessions_uri"] = sessions and sessions.uri
  transform = output("Transform", "transform_graph")
  found["transform_graph_uri"] = transform and transform.uri
  found.update(_stage_facts(found_outputs, nodes.RETRIEVAL))
  found["ranker"] = (_stage_facts(found_outputs, nodes.RANKER)
                     if nodes.RANKER.trainer in found_outputs else None)
  found["ranking"] = (_stage_facts(found_outputs, nodes.RANKING)
                      if nodes.RANKING.trainer in found_outputs else None)
  two = output(nodes.TWO_STAGE_EVALUATOR, "evaluation")
  found["two_stage"] = two and read_metrics(two.uri)
  found["forward"] = outputs.forward_outcome(found_outputs)
  found["drift"] = outputs.drift_outcome(found_outputs)
  found["tuning"] = tuning_facts(output(nodes.TUNER, "tuner_results"),
                                 output(nodes.TUNER, "best_hyperparameters"))
  return found


def tuning_facts(results, best) -> Optional[Dict[str, Any]]:
  """The Tuner's trials (score and values each, best first) and the best
  values the Trainer applied; None when the run did not tune."""
  if results is None:
    return None
  trials = _read_json(os.path.join(results.uri, layout.TUNER_RESULTS)) or []
  found_best = best and _read_json(
      os.path.join(best.uri, layout.BEST_HYPERPARAMETERS))
  return {"trials": sorted(trials, key=lambda t: -t["score"]),
          "best": (found_best or {}).get("values", {})}


# --- text ---------------------------------------------------------------------

def metric_label(name: str) -> str:
  """hit_rate@10 -> HR@10, ndcg@10 -> NDCG@10."""
  return name.replace("hit_rate", "HR").replace("ndcg", "NDCG")


METRIC_LABELS = tuple((name, metric_label(name))
                      for name in evaluation.REPORTED_METRICS)


def _table(header: List[str], rows: List[List[str]], indent: str = "  "
           ) -> List[str]:
  widths = [max(len(x) for x in column) for column in zip(header, *rows)]
  return [indent + "  ".join(c.rjust(w) if i else c.ljust(w)
                             for i, (c, w) in enumerate(zip(line, widths))
                             ).rstrip()
          for line in [header] + rows]


def _number(value: Optional[float], signed: bool = False) -> str:
  if value is None:
    return "-"
  return f"{value:+.4f}" if signed else f"{value:.4f}"


def _megabytes(size: int) -> str:
  return f"{size / 2**20:.2f} MiB"


def metric_columns(roles: Dict[str, Dict[str, Dict[str, Any]]],
                   has_baseline: bool) -> Tuple[List[str], Any]:
  """Header and a row function for a metric: the model, the most-popular
  baseline and the model's delta to it, and, with a baseline model, that
  model and the delta (TFMA's diff)."""
  header = ["model", "most popular", "vs popular"]
  if has_baseline:
    header += ["baseline", "vs baseline"]

  def row(name: str) -> List[str]:
    def get(role, output):
      return roles.get(role, {}).get(output, {}).get(name)
    model = get(evaluation.CANDIDATE, names.SCORES)
    popular = get(evaluation.CANDIDATE, names.POPULARITY_SCORES)
    cells = [_number(model), _number(popular),
             _number(None if model is None or popular is None
                     else model - popular, signed=True)]
    if has_baseline:
      cells += [_number(get(evaluation.BASELINE, names.SCORES)),
                _number(get(evaluation.DIFF, names.SCORES), signed=True)]
    return cells
  return header, row


def slice_rows(found: Dict[str, Any]) -> List[Tuple[str, str, Dict]]:
  """(slice feature, value, roles) for every slice, in report order."""
  rows = []
  for key, roles in (found.get("slices") or {}).items():
    if len(key) == 1:
      (feature, value), = key
      rows.append((feature, value, roles))
  order = {name: i for i, name in enumerate(slices.FEATURES)}
  return sorted(rows, key=lambda r: (order.get(r[0], len(order)), r[0],
                                     slices.tier_order(r[1])))


def count(roles) -> str:
  """The example count of a slice (its users), for tables and plots."""
  count = roles.get(evaluation.CANDIDATE, {}).get(names.SCORES, {}).get(
      "example_count")
  return "-" if count is None else str(int(count))


def format_text(found: Dict[str, Any]) -> str:
  """The report as plain text (what `recsys report` prints)."""
  row = found["run"]
  config = found["config"]
  lines = [f"recsys report: run {row['run']} of {found['output_dir']}",
           f"  started {row['started']}; {row['components']} components, "
           f"{row['cached']} from the cache"]
  if config is not None:
    lines.append(f"  config {config.digest()}: {config.data.dataset} "
                 f"{config.data.data_dir}, encoder {config.model.encoder}, "
                 f"{config.runner} runner")

  lines += ["", "Data (raw interactions, TFDV statistics)"]
  data = found["data"]
  for split, stats in data["splits"].items():
    lines.append(f"  {split}: {stats['examples']} interactions, "
                 f"{stats['users']} users, {stats['items']} items")
  lines.append("  anomalies: " + ("none" if not data["anomalies"] else
                                  f"{len(data['anomalies'])}"))
  lines += [f"    {line}" for line in data["anomalies"]]
  if found.get("drift"):
    lines.append("  drift from the previous span (DistributionValidator): "
                 + ", ".join(f"{feature} {d['measure']} {d['distance']:.4f} "
                             f"(bound {d['bound']:g})"
                             for feature, d in sorted(found["drift"].items())))
  sessions = found.get("sessions")
  if sessions:
    lines.append(
        f"  sessions: {sessions['users']} users; examples train "
        f"{sessions['train_examples']} (windows over "
        f"{sessions['train_interactions']} train interactions, "
        f"{sessions.get('train_context_repeats', 0)} repeated as context), "
        f"eval {sessions['eval_examples']}, "
        f"test {sessions['test_examples']}; dropped "
        f"{sessions['short_users_dropped']} short users "
        f"({sessions['short_user_interactions_dropped']} interactions), "
        f"{sessions['low_rating_interactions_dropped']} low-rated "
        "interactions")
    if sessions.get("forward_span") is not None:
      lines.append(
          f"  spans {', '.join(map(str, sessions['spans']))}: forward "
          f"examples {sessions['forward_examples']} (first interactions in "
          f"span {sessions['forward_span']}; "
          f"{sessions['forward_new_users']} users new in it)")

  tuning = found.get("tuning")
  if tuning:
    lines += ["", tuning_text(tuning)]

  training = found.get("training")
  if training:
    lines += ["", "Training",
              f"  {training['epochs']} epochs in {training['seconds']:.0f} s, "
              f"best epoch {training['best_epoch']}; "
              f"{training['train_predictions_per_second']:.0f} train "
              "predictions/s"]

  slices_found = found.get("slices")
  if slices_found:
    overall = slices_found.get((), {})
    blessing = found.get("blessing") or {}
    has_baseline = bool(blessing.get("baseline_model_id"))
    header, metric_row = metric_columns(overall, has_baseline)
    lines += ["", f"Evaluation on the test split ({count(overall)} users, "
              "full ranking, seen items excluded)"]
    if has_baseline:
      lines.append(f"  baseline: the latest blessed model "
                   f"#{blessing['baseline_model_id']} "
                   f"({blessing['baseline_model']})")
    lines += _table(["metric"] + header,
                    [[label] + metric_row(name)
                     for name, label in METRIC_LABELS])
    rows = slice_rows(found)
    if rows:
      lines += ["", "HR@10 by slice"]
      table_rows, previous = [], None
      for feature, value, roles in rows:
        _, slice_metric_row = metric_columns(roles, has_baseline)
        table_rows.append([feature if feature != previous else "", value,
                           count(roles)] + slice_metric_row("hit_rate@10"))
        previous = feature
      lines += _table(["slice", "value", "users"] + header, table_rows)

  if (found.get("forward") or {}).get("span") is not None:  # several spans
    lines += [""] + forward_text(found["forward"])
  if found.get("tflite"):
    lines += [""] + tflite_text(found["tflite"], (slices_found or {}).get(
        (), {}).get(evaluation.CANDIDATE, {}).get(names.SCORES, {}))
  blessing = found.get("blessing")
  if blessing:
    lines += ["", "Blessing: " + ("blessed" if blessing["blessed"] else
                                  "NOT blessed"),
              f"  {blessing['reason']}"]
  lines += _pushed_lines(found.get("pushed"))
  if found.get("not_pushed_reason"):
    lines.append(f"  not pushed: {found['not_pushed_reason']}")
  if found.get("ranker"):
    lines += ["", ""] + ranker_text(found["ranker"])
  if found.get("ranking"):
    lines += ["", ""] + ranking_text(found["ranking"])
  if found.get("two_stage"):
    lines += ["", ""] + two_stage_text(found["two_stage"])
  return "\n".join(lines)


def forward_text(forward: Dict[str, Any]) -> List[str]:
  """The model blessed before the newest span, ranked on that span (each
  user's first interaction in it), beside most-popular; or why not."""
  if not forward.get("metrics"):
    return [f"Forward evaluation: none ({forward['status']})"]
  metrics = forward["metrics"]
  rows = [[label] + [_number(metrics.get(output, {}).get(name))
                     for output in (names.SCORES, names.POPULARITY_SCORES)]
          for name, label in METRIC_LABELS]
  return ([f"Forward evaluation on span {forward['span']} "
           f"({forward['examples']} users' first interaction in it, full "
           "ranking, seen items excluded): the latest blessed model before "
           f"it, trained through span {forward['model_trained_through_span']}"]
          + _table(["metric", "model", "most popular"], rows))


def tflite_text(tflite: Dict[str, Any], saved_model: Dict[str, Any]
                ) -> List[str]:
  """The pushed file's own test metrics beside the SavedModel's, and its
  HR@10 by slice."""
  lines = [f"model.tflite on the test split ({tflite['users']} users, "
           f"{tflite['tflite_bytes']:,} bytes, through the TFLite "
           "interpreter)"]
  rows = [[label, _number(saved_model.get(name)),
           _number(tflite["overall"].get(name))]
          for name, label in METRIC_LABELS]
  lines += _table(["metric", "SavedModel (TFMA)", "model.tflite"], rows)
  rows, previous = [], None
  for feature, values in tflite.get("slices", {}).items():
    for value, metrics in values.items():
      rows.append([feature if feature != previous else "", value,
                   str(metrics["users"]), _number(metrics["hit_rate@10"])])
      previous = feature
  if rows:
    lines += ["", "model.tflite HR@10 by slice"]
    lines += _table(["slice", "value", "users", "HR@10"], rows)
  return lines


def tuning_text(tuning: Dict[str, Any]) -> str:
  """The Tuner's trials as a table, best first."""
  trials = tuning["trials"]
  names_ = sorted({k for t in trials for k in t} - {"trial_id", "score"})
  rows = [[t["trial_id"], _number(t["score"])] + [
      f"{t[n]:.4g}" if isinstance(t.get(n), float) else str(t.get(n, "-"))
      for n in names_] for t in trials]
  return "\n".join(
      [f"Tuning (TFX Tuner: {len(trials)} trials, eval NDCG@10; the Trainer "
       "used the best)"] + _table(["trial", "NDCG@10"] + names_, rows))


def _pushed_lines(pushed) -> List[str]:
  lines = ["", "Pushed: " + ("nothing" if not pushed else pushed["path"])]
  if pushed:
    lines.append(f"  model.tflite {_megabytes(pushed['tflite_bytes'])}, "
                 f"saved_model {_megabytes(pushed['saved_model_bytes'])}")
  return lines


RATING_LABELS = (("rmse", "RMSE"), ("mae", "MAE"))


def rating_columns(roles: Dict[str, Dict[str, Dict[str, Any]]],
                   has_baseline: bool) -> Tuple[List[str], Any]:
  """Header and a row function for a rating metric: the model, the
  per-item-mean and global-mean baselines, the model's delta to the item
  mean, and with a baseline model that model and the delta."""
  header = ["model", "item mean", "global mean", "vs item mean"]
  if has_baseline:
    header += ["baseline", "vs baseline"]

  def row(name: str) -> List[str]:
    def get(role, output):
      return roles.get(role, {}).get(output, {}).get(name)
    model, item = get(evaluation.CANDIDATE, names.RATING), get(
        evaluation.CANDIDATE, names.ITEM_MEAN_RATING)
    cells = [_number(model), _number(item),
             _number(get(evaluation.CANDIDATE, names.GLOBAL_MEAN_RATING)),
             _number(None if model is None or item is None else model - item,
                     signed=True)]
    if has_baseline:
      cells += [_number(get(evaluation.BASELINE, names.RATING)),
                _number(get(evaluation.DIFF, names.RATING), signed=True)]
    return cells
  return header, row


def ranking_text(stage: Dict[str, Any]) -> List[str]:
  """The ranking stage: training, test RMSE/MAE beside the baselines and
  per slice, blessing, push."""
  lines = ["Ranking stage (rating model)"]
  training = stage.get("training")
  if training:
    lines.append(f"  {training['epochs']} epochs in {training['seconds']:.0f} "
                 f"s, best epoch {training['best_epoch']}; "
                 f"{training['train_ratings']} train ratings, mean "
                 f"{training['train_mean_rating']:.3f}")
  slices_found = stage.get("slices") or {}
  overall = slices_found.get((), {})
  blessing = stage.get("blessing") or {}
  has_baseline = bool(blessing.get("baseline_model_id"))
  if overall:
    users = overall.get(evaluation.CANDIDATE, {}).get(names.RATING, {}).get(
        "example_count")
    header, metric_row = rating_columns(overall, has_baseline)
    lines += [f"  test split: {int(users or 0)} users, each one's last rating"]
    if has_baseline:
      lines.append(f"  baseline: the latest blessed rating model "
                   f"#{blessing['baseline_model_id']}")
    lines += _table(["metric"] + header, [[label] + metric_row(name)
                                          for name, label in RATING_LABELS])
    rows, previous = [], None
    for feature, value, roles in slice_rows({"slices": slices_found}):
      _, slice_row = rating_columns(roles, has_baseline)
      users = roles.get(evaluation.CANDIDATE, {}).get(names.RATING, {}).get(
          "example_count")
      rows.append([feature if feature != previous else "", value,
                   "-" if users is None else str(int(users))]
                  + slice_row("rmse"))
      previous = feature
    if rows:
      lines += ["", "  RMSE by slice"]
      lines += _table(["slice", "value", "users"] + header, rows)
  if blessing:
    lines += ["", "  Blessing: " + ("blessed" if blessing["blessed"] else
                                    "NOT blessed"), f"    {blessing['reason']}"]
  lines += [f"  {line}" if line else line
            for line in _pushed_lines(stage.get("pushed"))]
  return lines


def ranker_text(stage: Dict[str, Any]) -> List[str]:
  """The next-item ranker: training, the two stages against retrieval alone
  (TFMA's baseline) overall and by slice, both files chained, blessing,
  push."""
  lines = ["Two stages: retrieval, then the next-item ranker"]
  training = stage.get("training")
  if training:
    lines.append(
        f"  ranker: {training['epochs']} epochs in {training['seconds']:.0f} "
        f"s, best epoch {training['best_epoch']}; "
        f"{training['train_lists_with_label']} of "
        f"{training['train_lists']} train lists hold their label")
  overall = (stage.get("slices") or {}).get((), {})

  def row(roles, name):
    def get(role):
      return roles.get(role, {}).get(names.SCORES, {}).get(name)
    return [_number(get(evaluation.BASELINE)), _number(get(evaluation.CANDIDATE)),
            _number(get(evaluation.DIFF), signed=True)]
  header = ["retrieval alone", "two stages", "change"]
  if overall:
    tflite = (stage.get("tflite") or {}).get("overall", {})
    lines += [f"  test split ({count(overall)} users, full ranking, seen "
              "items excluded); both files: the TFLite files chained as an "
              "app chains them"]
    lines += _table(["metric"] + header + ["both files"],
                    [[label] + row(overall, name) + [_number(tflite.get(name))]
                     for name, label in METRIC_LABELS])
    rows, previous = [], None
    for feature, value, roles in slice_rows(stage):
      rows.append([feature if feature != previous else "", value,
                   count(roles)] + row(roles, "ndcg@10"))
      previous = feature
    if rows:
      lines += ["", "  NDCG@10 by slice"]
      lines += _table(["slice", "value", "users"] + header, rows)
  blessing = stage.get("blessing")
  if blessing:
    lines += ["", "  Blessing: " + ("blessed" if blessing["blessed"] else
                                    "NOT blessed"), f"    {blessing['reason']}"]
  lines += [f"  {line}" if line else line
            for line in _pushed_lines(stage.get("pushed"))]
  if stage.get("not_pushed_reason"):
    lines.append(f"    not pushed: {stage['not_pushed_reason']}")
  return lines


def two_stage_text(found: Dict[str, Any]) -> List[str]:
  """Retrieval alone vs its top N re-ordered by predicted rating."""
  labels = [(name, label) for name, label in METRIC_LABELS
            if name in found["retrieval"]]
  rows = [["retrieval alone"] + [_number(found["retrieval"][n])
                                 for n, _ in labels]]
  rows += [[f"top {n} by rating"] + [_number(metrics[name])
                                     for name, _ in labels]
           for n, metrics in found["two_stage"].items()]
  return ([f"Retrieval's top N re-ordered by predicted rating (the rating "
           f"model's list; test split, {found['users']} users, full "
           "ranking, seen items excluded)"]
          + _table([""] + [label for _, label in labels], rows))
