"""`recsys recommend` and `recsys latency`: calling a pushed TFLite model the
way an app does."""
import json
import os
import sys
from typing import Any, Dict

from components.lib import features as F
from components.lib import layout
from components.lib.session_data import MOVIELENS, session_data
from pipeline.config import ConfigError


def latest_version(model_dir: str) -> str:
  """A version directory, or the newest version under a push root."""
  if os.path.exists(os.path.join(model_dir, layout.TFLITE_MODEL)):
    return model_dir
  versions = [d for d in os.listdir(model_dir) if d.isdigit()] if os.path.isdir(
      model_dir) else []
  if not versions:
    raise ConfigError(f"no pushed model ({layout.TFLITE_MODEL}) in "
                      f"{model_dir}")
  return os.path.join(model_dir, max(versions, key=int))


def _pushed_dataset(version_dir: str) -> str:
  """The data set a pushed model was trained on (its metadata.json)."""
  try:
    with open(os.path.join(version_dir, layout.BUNDLE_METADATA),
              encoding="utf-8") as f:
      return json.load(f)["dataset"]
  except (OSError, KeyError, ValueError):
    return MOVIELENS


def _describe(entry: Dict[str, Any]) -> str:
  """An item's title (MovieLens), else its catalog fields."""
  if "title" in entry:
    return entry["title"]
  return " ".join(f"{k}={v}" for k, v in sorted(entry.items()) if v)


def cmd_recommend(args) -> int:
  from components.model.export import tflite  # pylint: disable=import-outside-toplevel
  version_dir = latest_version(args.model)
  catalog = {}
  catalog_path = os.path.join(version_dir, layout.CATALOG)
  if os.path.exists(catalog_path):
    with open(catalog_path, encoding="utf-8") as f:
      catalog = json.load(f)
  history = [h.strip() for h in args.history.split(",") if h.strip()]
  # The position features of each history item the catalog knows.
  data = session_data(_pushed_dataset(version_dir))
  features: Dict[str, list] = {}
  for item in history:
    known = data.item_features(catalog.get(item, {}))
    for name, value in known.items():
      features.setdefault(name, []).append(value)
  if args.ratings:
    ratings = [float(r) for r in args.ratings.split(",")]
    if len(ratings) != len(history):
      raise ConfigError("--ratings must give one rating per --history item")
    features[F.CONTEXT_RATING] = ratings
  unknown = [h for h in history if catalog and h not in catalog]
  if unknown:
    print(f"note: not in the catalog (treated as unknown): {', '.join(unknown)}",
          file=sys.stderr)
  recommender = tflite.TFLiteRecommender(
      os.path.join(version_dir, layout.TFLITE_MODEL), num_threads=1)
  user = {}
  for item in args.user:
    name, _, value = item.partition("=")
    if name not in recommender.inputs or not value:
      raise ConfigError(f"--user {item!r}: expected NAME=VALUE with NAME one of "
                        f"the model's inputs ({', '.join(recommender.inputs)})")
    user[name] = recommender.parse_value(name, value)
  ids, scores = recommender.recommend(
      history, {k: v for k, v in features.items() if k in recommender.inputs},
      user=user)
  print(f"model {version_dir}")
  if not args.two_stage:
    for rank, (item, score) in enumerate(zip(ids[:args.top], scores), start=1):
      print(f"{rank:>3}. {item:>8}  {score:8.3f}  "
            f"{_describe(catalog.get(item, {}))}")
    return 0
  # Two stages: the retrieval top-K re-ordered by predicted rating.
  rating_dir = latest_version(args.ranking_model or os.path.join(
      os.path.dirname(version_dir), layout.RANKING_DIR))
  rater = tflite.TFLiteRater(os.path.join(rating_dir, layout.TFLITE_MODEL))
  rater_user = {k: v for k, v in user.items() if k in rater.inputs}
  predicted = rater.rate(history, ids, features.get(F.CONTEXT_RATING),
                         rater_user)
  order = sorted(range(len(ids)), key=lambda i: (-predicted[i], i))
  print(f"rating model {rating_dir}: the top {len(ids)} re-ordered by "
        "predicted rating")
  for rank, i in enumerate(order[:args.top], start=1):
    print(f"{rank:>3}. {ids[i]:>8}  rating {predicted[i]:5.2f}  "
          f"(retrieval #{i + 1})  {_describe(catalog.get(ids[i], {}))}")
  return 0

def cmd_latency(args) -> int:
  from pipeline.bench import latency  # pylint: disable=import-outside-toplevel
  reference = args.reference or latency.REFERENCE_SCRIPT
  result = latency.measure_pushed_model(latest_version(args.model),
                                        args.queries, args.threads, args.seed,
                                        reference)
  if args.json:
    print(json.dumps(result))
    return 0
  print(f"model {result['path']} ({result['bytes']:,} bytes), "
        f"{args.threads} thread(s), {result['queries']} queries of "
        f"{result['context_length']} items")
  for name, what in [("invoke", "invoke()"),
                     ("end_to_end", "end to end (recommend)")]:
    print(f"  {what}: median {result[name + '_median_ms']:.3f} ms, p90 "
          f"{result[name + '_p90_ms']:.3f} ms, max "
          f"{result[name + '_max_ms']:.3f} ms")
  if result["reference"]:
    print(f"  reference workload invoke(): median "
          f"{result['reference_median_ms']:.3f} ms; invoke() "
          f"{result['invoke_ratio']:.2f}x the reference")
  else:
    print(f"  no reference workload ({reference} not found): no ratio")
  return 0


def add_commands(commands) -> None:
  recommend = commands.add_parser(
      "recommend", help="recommend from a pushed TFLite model",
      description="Load a pushed model.tflite and print its top items for a "
      "history, the way an app would call it (1 thread).")
  recommend.add_argument("--model", required=True, metavar="DIR",
                         help="a pushed version directory, or the push root "
                         "(the newest version is used)")
  recommend.add_argument("--history", required=True, metavar="ID,ID,...",
                         help="item ids, oldest first")
  recommend.add_argument("--ratings", metavar="R,R,...",
                         help="the history's ratings (default: not rated)")
  recommend.add_argument("--user", action="append", default=[],
                         metavar="NAME=VALUE",
                         help="a user feature the model takes, e.g. "
                         "user_gender=F or user_age=25 (repeatable)")
  recommend.add_argument("--top", type=int, default=10,
                         help="how many to print (default 10)")
  recommend.add_argument("--two-stage", action="store_true",
                         help="re-order the retrieval model's top items by "
                         "the pushed rating model's predicted rating")
  recommend.add_argument("--ranking-model", metavar="DIR",
                         help="the rating model for --two-stage: a version "
                         "directory or its push root (default: ranking/ "
                         "beside the retrieval model's versions)")
  recommend.set_defaults(func=cmd_recommend)

  latency = commands.add_parser(
      "latency", help="time queries through a pushed TFLite model",
      description="Run random full-length histories from the catalog through "
      "model.tflite one query at a time (tf.lite.Interpreter, inputs set "
      "before each timed invoke()) and print the median, p90 and max "
      "milliseconds of invoke() and of the whole recommend() call, and "
      "invoke() as a ratio to the reference workload timed in the same "
      "process, interleaved.")
  latency.add_argument("--model", required=True, metavar="DIR",
                       help="a pushed version directory, or the push root")
  latency.add_argument("--queries", type=int, default=1000)
  latency.add_argument("--threads", type=int, default=1)
  latency.add_argument("--json", action="store_true",
                       help="print the figures as one JSON object")
  latency.add_argument("--seed", type=int, default=0)
  latency.add_argument("--reference", metavar="SCRIPT",
                       help="the reference workload's script (default: "
                       "../shared/ondevice/reference.py beside the project)")
  latency.set_defaults(func=cmd_latency)
