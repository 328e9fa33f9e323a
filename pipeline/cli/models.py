"""`recsys recommend` and `recsys latency`: calling a pushed TFLite model the
way an app does (with --two-stage: the retrieval model, then the next-item
ranker that follows it)."""
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


def _read_metadata(version_dir: str) -> Dict[str, Any]:
  with open(os.path.join(version_dir, layout.BUNDLE_METADATA),
            encoding="utf-8") as f:
    return json.load(f)


def chained_versions(model: str, ranker_model: str = ""):
  """(the retrieval version directory, the ranker version directory) of
  --two-stage: the newest ranker under `ranker_model` (default: ranker/
  beside the retrieval versions) and the retrieval version its metadata
  says it follows, which `model` must be or hold."""
  model = os.path.normpath(model)
  is_version = os.path.exists(os.path.join(model, layout.TFLITE_MODEL))
  root = os.path.dirname(model) if is_version else model
  ranker_dir = latest_version(ranker_model or os.path.join(
      root, layout.RANKER_DIR))
  chain = _read_metadata(ranker_dir).get("chain")
  if not chain:
    raise ConfigError(f"{ranker_dir} is not a next-item ranker's bundle "
                      f"(its {layout.BUNDLE_METADATA} has no chain)")
  retrieval_dir = os.path.join(root, str(chain["retrieval_version"]))
  if is_version and model != retrieval_dir:
    raise ConfigError(f"the ranker {ranker_dir} follows retrieval version "
                      f"{chain['retrieval_version']}, not {model}")
  if not os.path.exists(os.path.join(retrieval_dir, layout.TFLITE_MODEL)):
    raise ConfigError(f"the ranker {ranker_dir} follows retrieval version "
                      f"{chain['retrieval_version']}, which is not in {root}")
  return retrieval_dir, ranker_dir


def cmd_recommend(args) -> int:
  from components.model.export import tflite  # pylint: disable=import-outside-toplevel
  if args.two_stage and args.rated:
    raise ConfigError("--two-stage and --rated are two ways to re-order: "
                      "give one")
  ranker_dir = None
  if args.two_stage:
    version_dir, ranker_dir = chained_versions(args.model, args.ranker_model)
  else:
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
  features = {k: v for k, v in features.items() if k in recommender.inputs}
  print(f"model {version_dir}")
  if ranker_dir:
    two_stages = tflite.TwoStageRecommender(
        recommender, tflite.TFLiteRanker(
            os.path.join(ranker_dir, layout.TFLITE_MODEL)))
    ids, scores, places = two_stages.recommend(history, features, user)
    print(f"ranker {ranker_dir}: retrieval's best "
          f"{two_stages.ranker.candidates} re-ordered")
    for rank, (item, score, place) in enumerate(
        zip(ids[:args.top], scores, places), start=1):
      print(f"{rank:>3}. {item:>8}  {score:8.3f}  (retrieval #{place + 1})  "
            f"{_describe(catalog.get(item, {}))}")
    return 0
  ids, scores = recommender.recommend(history, features, user=user)
  if not args.rated:
    for rank, (item, score) in enumerate(zip(ids[:args.top], scores), start=1):
      print(f"{rank:>3}. {item:>8}  {score:8.3f}  "
            f"{_describe(catalog.get(item, {}))}")
    return 0
  # "You would rate these highly": the retrieval top-K by predicted rating.
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
  version_dir, ranker_dir = (chained_versions(args.model, args.ranker_model)
                             if args.two_stage
                             else (latest_version(args.model), None))
  result = latency.measure_pushed_model(version_dir, args.queries,
                                        args.threads, args.seed, reference,
                                        ranker_dir)
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
  if ranker_dir:
    print(f"ranker {result['ranker_path']} ({result['ranker_bytes']:,} "
          f"bytes), {result['candidates']} candidates")
    for name, what in [("ranker_invoke", "ranker invoke()"),
                       ("two_stage_invoke", "both invoke()s"),
                       ("two_stage_end_to_end", "two stages end to end")]:
      print(f"  {what}: median {result[name + '_median_ms']:.3f} ms, p90 "
            f"{result[name + '_p90_ms']:.3f} ms, max "
            f"{result[name + '_max_ms']:.3f} ms")
    print(f"  two stages over retrieval alone: invoke() "
          f"{result['two_stage_invoke_ratio']:.2f}x, end to end "
          f"{result['two_stage_end_to_end_ratio']:.2f}x")
  if result["reference"]:
    print(f"  reference workload invoke(): median "
          f"{result['reference_median_ms']:.3f} ms; invoke() "
          f"{result['invoke_ratio']:.2f}x the reference" + (
              f", both invoke()s {result['two_stage_invoke_reference_ratio']:.2f}x"
              if ranker_dir else ""))
  else:
    print(f"  no reference workload ({reference} not found): no ratio")
  return 0


def _add_two_stage_arguments(parser, what: str) -> None:
  parser.add_argument("--two-stage", action="store_true",
                      help=f"{what}: the newest ranker, after the retrieval "
                      "version its metadata.json says it follows")
  parser.add_argument("--ranker-model", metavar="DIR",
                      help="the ranker for --two-stage: a version directory "
                      "or its push root (default: ranker/ beside the "
                      "retrieval model's versions)")


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
  _add_two_stage_arguments(recommend, "re-order retrieval's best "
                           "candidates with the pushed next-item ranker")
  recommend.add_argument("--rated", action="store_true",
                         help="instead: the retrieval model's top items "
                         "re-ordered by the pushed rating model's predicted "
                         "rating (what you would rate highly, not what you "
                         "would watch next)")
  recommend.add_argument("--ranking-model", metavar="DIR",
                         help="the rating model for --rated: a version "
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
  _add_two_stage_arguments(latency, "also time the pushed next-item ranker "
                           "and give both stages as ratios to retrieval "
                           "alone")
  latency.add_argument("--reference", metavar="SCRIPT",
                       help="the reference workload's script (default: "
                       "../shared/ondevice/reference.py beside the project)")
  latency.set_defaults(func=cmd_latency)
