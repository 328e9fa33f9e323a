"""Data sets of other shapes, cut from the ML-1M subset at bench time.

The bench's defaults must hold on data nobody tuned them for, so besides the
ML-1M subset (../shared/data/ml-1m, users 1-2999) it runs on cuts of it
with another shape, written in the ML-1M file format into the bench's
output directory (MovieLens may not be redistributed: nothing derived is
committed), and on the embedded sample. Every cut is deterministic.

* first-1000-users: users 1-1000 with all their ratings (the size of
  ML-100K: about a thousand users, long histories).
* sparse-20pct: a seeded 20 % of each user's ratings (short histories,
  the same catalog).
* most-active-500: the 500 users with the most ratings (very long
  histories).

Beside them, a large catalog the subset does not have: catalog-10k, written
by the embedded sample's generator (data/make_sample.py: series of movies,
genre tastes, a sequential habit) with 2,000 users and about 10,000 movies.
"""
import collections
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import shutil
import time
from typing import Callable, Dict, List, Sequence

import numpy as np

from pipeline import PROJECT_ROOT

ML1M = "ml-1m"
SAMPLE = "sample"
SEED = 0
RATINGS, MOVIES, USERS = "ratings.dat", "movies.dat", "users.dat"


def _read(ml1m_dir: str) -> List[str]:
  with open(os.path.join(ml1m_dir, RATINGS), encoding="latin-1") as f:
    return f.read().splitlines()


def _user(line: str) -> int:
  return int(line.split("::", 1)[0])


def first_users(lines: List[str], count: int = 1000) -> List[str]:
  return [line for line in lines if _user(line) <= count]


def sparse(lines: List[str], share: float = 0.2) -> List[str]:
  """Each user's ratings kept with probability `share` (seeded per user),
  at least one each, in file order."""
  by_user: Dict[int, List[int]] = collections.defaultdict(list)
  for index, line in enumerate(lines):
    by_user[_user(line)].append(index)
  kept = set()
  for user, rows in by_user.items():
    rng = np.random.default_rng([SEED, user])
    keep = rng.random(len(rows)) < share
    keep[rng.integers(len(rows))] = True
    kept.update(row for row, k in zip(rows, keep) if k)
  return [line for index, line in enumerate(lines) if index in kept]


def most_active(lines: List[str], count: int = 500) -> List[str]:
  counts = collections.Counter(_user(line) for line in lines)
  active = {user for user, _ in sorted(counts.items(),
                                       key=lambda uc: (-uc[1], uc[0]))[:count]}
  return [line for line in lines if _user(line) in active]


CUTS: Dict[str, Callable[[List[str]], List[str]]] = {
    "first-1000-users": first_users,
    "sparse-20pct": sparse,
    "most-active-500": most_active,
}


def write_cut(ml1m_dir: str, out_dir: str, name: str) -> str:
  """Writes the cut `name` of the ratings beside ML-1M's movies and users
  files; -> its directory."""
  target = os.path.join(out_dir, name)
  os.makedirs(target, exist_ok=True)
  with open(os.path.join(target, RATINGS), "w", encoding="latin-1") as f:
    f.write("\n".join(CUTS[name](_read(ml1m_dir))) + "\n")
  for other in (MOVIES, USERS):
    shutil.copyfile(os.path.join(ml1m_dir, other), os.path.join(target, other))
  return target


CATALOG_10K = "catalog-10k"
DATA_SETS = (ML1M,) + tuple(CUTS) + (SAMPLE, CATALOG_10K)
# The generator's sizes for about 10,000 rated movies (2.95 parts per
# series, nine in ten of them rated).
CATALOG_10K_SHAPE = {"num_users": 2000, "num_series": 3800,
                     "mean_ratings": 80}


def write_catalog_10k(out_dir: str) -> str:
  """The large synthetic catalog, from the sample's generator (data/ is no
  package: it is loaded from its file)."""
  path = os.path.join(PROJECT_ROOT, "data", "make_sample.py")
  spec = importlib.util.spec_from_file_location("make_sample", path)
  generator = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(generator)
  target = os.path.join(out_dir, CATALOG_10K)
  generator.write(target, seed=SEED, **CATALOG_10K_SHAPE)
  return target


def data_sets(ml1m_dir: str, out_dir: str,
              names: Sequence[str] = DATA_SETS) -> Dict[str, str]:
  """{name: data directory} of `names`: the subset itself, cuts of it and
  the large catalog (written under out_dir), and the embedded sample."""
  sets = {}
  for name in names:
    if name == ML1M:
      sets[name] = ml1m_dir
    elif name == SAMPLE:
      sets[name] = os.path.join(PROJECT_ROOT, "data", "sample")
    elif name == CATALOG_10K:
      sets[name] = write_catalog_10k(out_dir)
    else:
      sets[name] = write_cut(ml1m_dir, out_dir, name)
  return sets


# --- The bench: each data set with each profile --------------------------------

# The settings every profile shares: retrieval alone (the ranking stage is
# benched with `make run-ml1m`), and no blessing against an earlier
# profile's model in the same pipeline.
# The long-history model (the quality profile) is what adapts to the data.
COMMON = {"profile": "quality", "ranking": {"enabled": False},
          "ranker": {"enabled": False},
          "eval": {"max_hit_rate_drop": 1.0}}
# How each profile differs: the defaults as they were before they adapted
# to the data (a fixed context of 50 cut into disjoint chunks -- windows that
# overlap by one item are the closest the windowed layout has -- Adam at a
# constant 0.001, batch 64, dropout 0.2), the adapted defaults, and those
# with the Tuner on a bench budget (4 trials of at most 3 minutes, a fifth of
# the default search) so that six data sets fit in an afternoon.
PROFILES = {
    "before": {"adapt": False,
               "session": {"max_context_length": 50, "train_stride": 50},
               "model": {"dropout": 0.2},
               "train": {"learning_rate": 0.001, "learning_rate_decay": 1.0,
                         "batch_size": 64}},
    "default": {},
    "tuned": {"tuner": {"enabled": True, "trials": 4, "max_minutes": 12.0}},
}


def _merged(*mappings: Dict) -> Dict:
  out: Dict = {}
  for mapping in mappings:
    for key, value in mapping.items():
      out[key] = (_merged(out[key], value) if isinstance(value, dict)
                  and isinstance(out.get(key), dict) else value)
  return out


def profile_config(profile: str, data_dir: str, output_dir: str):
  """The RunConfig of one bench run, adapted to the data unless the
  profile turns adaptation off."""
  # pylint: disable=import-outside-toplevel
  from pipeline import adaptive
  from pipeline.config import given_settings, load_config
  values = _merged(COMMON, PROFILES[profile], {
      "data": {"data_dir": data_dir}, "output_dir": output_dir})
  return adaptive.adapt(load_config(values=values),
                        given_settings(values=values))


def run_profile(profile: str, data_dir: str, output_dir: str
                ) -> Dict[str, object]:
  """One pipeline run; -> its row: test metrics, the model's, and the
  training facts."""
  # pylint: disable=import-outside-toplevel
  from components.model.export import signature_names as names
  from components.user_modules.evaluation import REPORTED_METRICS
  from pipeline.runners import local
  started = time.monotonic()
  config = profile_config(profile, data_dir, output_dir)
  summary = local.run(config, quiet=True)
  metrics, training = summary["metrics"], summary["training"]
  return {
      "profile": profile,
      **{m: metrics[names.SCORES][m] for m in REPORTED_METRICS},
      "most_popular": {m: metrics[names.POPULARITY_SCORES][m]
                       for m in REPORTED_METRICS},
      "context_length": config.session.max_context_length,
      "loss": config.train.loss,
      "train_minutes": training["seconds"] / 60.0,
      "epochs": training["epochs"],
      "epoch_seconds": training["seconds"] / training["epochs"],
      "adapted": dict(config.adapted),
      "run_minutes": (time.monotonic() - started) / 60.0,
  }


def _recorded(output_dir: str) -> Dict[str, Dict[str, object]]:
  """{data set: entry} of an earlier bench's shapes.json in output_dir."""
  path = os.path.join(output_dir, "shapes.json")
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return {entry["name"]: entry for entry in json.load(f)["data_sets"]}


def run_shapes(ml1m_dir: str, output_dir: str, names: Sequence[str],
               profiles: Sequence[str] = tuple(PROFILES),
               resume: bool = False) -> Dict[str, object]:
  """Every data set `names` names, each with every profile in `profiles`,
  one pipeline (output directory) per data set so profiles share its cached
  steps; shapes.json after every run. The rows of other data sets and
  profiles in an earlier shapes.json are kept (`--data-sets ml-1m
  --profiles tuned` adds those runs to a table); `resume` also keeps the
  named ones an interrupted bench recorded instead of running them again."""
  # pylint: disable=import-outside-toplevel
  from components.lib.settings import DataConfig, SessionConfig
  from pipeline import profile as data_profile
  from pipeline.bench.machine import machine
  recorded = _recorded(output_dir)
  sets = data_sets(ml1m_dir, os.path.join(output_dir, "data"), names)
  result: Dict[str, object] = {
      "date": datetime.date.today().isoformat(), "machine": machine(),
      "data_sets": []}
  rows: Dict[str, Dict[str, Dict[str, object]]] = {}
  for name in sorted(set(sets) | set(recorded), key=DATA_SETS.index):
    earlier = recorded.get(name, {"runs": []})
    if name in sets:
      found = data_profile.profile(DataConfig(data_dir=sets[name]),
                                   SessionConfig())
      # As shapes.json reads back (quantiles keyed by strings).
      shape = json.loads(json.dumps(dataclasses.asdict(found)))
    else:
      shape = earlier["shape"]
    rows[name] = {row["profile"]: row for row in earlier["runs"]}
    result["data_sets"].append({"name": name, "shape": shape, "runs": []})

  def record() -> None:
    """Every row known so far, the earlier ones included, in the files."""
    for entry in result["data_sets"]:
      known = rows[entry["name"]]
      entry["runs"] = [known[p] for p in PROFILES if p in known]
    write(output_dir, result)
  record()
  # The named data sets in the order given.
  for name in sets:
    for profile in profiles:
      if resume and profile in rows[name]:
        continue
      print(f"[bench] {name}: {profile}", flush=True)
      row = run_profile(profile, sets[name], os.path.join(output_dir, name))
      rows[name][profile] = row
      print(f"[bench] {name}: {profile}: HR@10 {row['hit_rate@10']:.4f}, "
            f"NDCG@10 {row['ndcg@10']:.4f}", flush=True)
      record()
  return result


def write(output_dir: str, result: Dict[str, object]) -> None:
  with open(os.path.join(output_dir, "shapes.json"), "w") as f:
    json.dump(result, f, indent=2)
  with open(os.path.join(output_dir, "shapes.md"), "w") as f:
    f.write(markdown(result))


def _run_minutes(result: Dict[str, object]) -> float:
  return sum(row.get("run_minutes", 0.0) for entry in result["data_sets"]
             for row in entry["runs"])


def change_error(hit_rate: float, users: int) -> float:
  """One standard error of the relative change between two HR@10 measured
  on the same `users` test users, as a share of `hit_rate`: each is a mean
  of one hit or miss per user (binomial), and their difference has the
  variance of two independent ones at most. A change within one or two of
  these is what another seed could give."""
  return math.sqrt(2.0 * hit_rate * (1.0 - hit_rate) / users) / hit_rate


def markdown(result: Dict[str, object]) -> str:
  """One row per data set: its shape, most popular, and HR@10 / NDCG@10 of
  each profile, the adapted default's change against the one before (with
  one standard error: `change_error`)."""
  lines = [f"{result['date']}, {result['machine']}; test split of each data "
           "set under PROTOCOL.md; its "
           f"pipeline runs took {_run_minutes(result):.0f} min", "",
           "| data set | users | items | interactions | p80 history | "
           "most popular | before | default (L, loss) | change (±1 s.e.) | "
           "tuned |",
           "|" + "---|" * 10]
  for entry in result["data_sets"]:
    shape = entry["shape"]
    runs = {r["profile"]: r for r in entry["runs"]}
    if not runs:
      continue
    any_run = next(iter(runs.values()))
    popular = any_run["most_popular"]

    def cell(profile: str) -> str:
      r = runs.get(profile)
      return (f"{r['hit_rate@10']:.4f} / {r['ndcg@10']:.4f}" if r else "–")
    default, before = runs.get("default"), runs.get("before")
    change = (f"{default['hit_rate@10'] / before['hit_rate@10'] - 1:+.0%} "
              f"(±{change_error(before['hit_rate@10'], shape['users']):.0%})"
              if default and before else "–")
    setting = (f" (L={default['context_length']}, {default['loss']})"
               if default else "")
    lines.append(
        f"| {entry['name']} | {shape['users']:,} | {shape['items']:,} | "
        f"{shape['interactions']:,} | {shape['history_quantiles']['80']} | "
        f"{popular['hit_rate@10']:.4f} / {popular['ndcg@10']:.4f} | "
        f"{cell('before')} | {cell('default')}{setting} | {change} | "
        f"{cell('tuned')} |")
  return "\n".join(lines) + "\n"
