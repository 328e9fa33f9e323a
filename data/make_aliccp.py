"""Writes synthetic Ali-CCP raw files (../shared/data/aliccp/FORMAT.md).

The real Ali-CCP needs a sign-up and may not be redistributed, so the
pipeline is tested on files this generator writes in exactly the raw format:
`train/` and `test/`, each a skeleton file (one impression per line) and a
common-features file (user-side features, joined on `common_feature_index`),
fields separated by `\\x01`, `\\x02` and `\\x03` as in the real files.

The data has structure a model can learn and a popularity ranking cannot:

* items have a category, shop, brand and 1-3 intentions, and a power-law
  popularity; a category has its own brands and intentions;
* each user likes a few categories and brands; impressions lean towards
  them, and clicks follow them (a liked category is clicked about ten times
  as often as another), so a user's clicked items predict the next click;
* within a visit (one common-features row, its impressions consecutive in
  the skeleton) the user browses on in the category of the last click.

Users' visits are spread over time: the first 80% of the time span is the
train files, the rest the test files, so most users appear in both (the
skeleton's order is the only order, as in the real data, which has no
timestamps). A few rows are inconsistent as in the real data (click 0,
conversion 1). The generator streams: memory grows with the catalog and
the number of visits, not with the impressions. Deterministic for a seed:
`python data/make_aliccp.py` rewrites the committed sample byte for byte.
"""
from __future__ import annotations

import argparse
import math
import os
from typing import Dict, List, TextIO

import numpy as np

# Feature-id ranges per field: one global id space, a range per field.
BASE = {"101": 31_000, "121": 1_000_000, "122": 1_100_000, "124": 1_200_000,
        "125": 1_300_000, "126": 1_400_000, "127": 1_500_000,
        "128": 1_600_000, "129": 1_700_000, "109_14": 2_000_000,
        "110_14": 2_500_000, "127_14": 3_000_000, "150_14": 3_500_000,
        "205": 4_100_000, "206": 8_300_000, "207": 8_400_000,
        "210": 8_900_000, "216": 9_000_000, "301": 9_340_000,
        "508": 9_350_000, "509": 9_600_000, "702": 9_800_000,
        "853": 9_900_000}
TRAIN_SHARE = 0.8
INCONSISTENT_RATE = 0.0005


def feature(field: str, ident: int, value: float = 1.0) -> str:
  text = "1.0" if value == 1.0 else f"{value:.5f}"
  return f"{field}\x02{BASE[field] + ident}\x03{text}"


def log_count(count: int) -> float:
  """The `*_14` and cross values: ln(k) of a small count k >= 2."""
  return math.log(count)


class Catalog:
  """Items with category, shop, brand, intentions and power-law popularity."""

  def __init__(self, rng: np.random.Generator, num_items: int):
    self.num_categories = max(10, num_items // 500)
    num_shops = max(20, num_items // 25)
    brands_per_category = 8
    cat_weight = 1.0 / np.arange(1, self.num_categories + 1) ** 0.8
    self.category = rng.choice(self.num_categories, size=num_items,
                               p=cat_weight / cat_weight.sum())
    self.brand = (self.category * brands_per_category
                  + rng.integers(0, brands_per_category, num_items))
    self.shop = rng.integers(0, num_shops, num_items)
    popularity = 1.0 / (rng.permutation(num_items) + 10.0) ** 1.1
    self.popularity = popularity / popularity.sum()
    self.text = []
    for i in range(num_items):
      c = int(self.category[i])
      intentions = sorted({c * 4 + int(k) for k in
                           rng.integers(0, 4, int(rng.integers(1, 4)))})
      self.text.append((
          [feature("205", i), feature("206", c), feature("207", int(self.shop[i]))]
          + [feature("210", t) for t in intentions]
          + [feature("216", int(self.brand[i]))], intentions))
    # Per category: its items and their cumulative popularity.
    self.items_of, self.cumulative_of = [], []
    for c in range(self.num_categories):
      items = np.flatnonzero(self.category == c)
      weights = self.popularity[items]
      self.items_of.append(items)
      self.cumulative_of.append(np.cumsum(weights) / weights.sum())
    self.cumulative = np.cumsum(self.popularity)

  def popular(self, rng: np.random.Generator, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(self.cumulative, rng.random(n)),
                      len(self.cumulative) - 1)

  def in_category(self, rng: np.random.Generator, c: int, n: int) -> np.ndarray:
    items = self.items_of[c]
    index = np.searchsorted(self.cumulative_of[c], rng.random(n))
    return items[np.minimum(index, len(items) - 1)]


class User:
  """Demographics and tastes: liked categories (with weights) and brands."""

  def __init__(self, rng: np.random.Generator, uid: int, catalog: Catalog):
    self.uid = uid
    count = int(rng.integers(1, 4))
    self.categories = [int(c) for c in catalog.category[
        catalog.popular(rng, count)]]
    self.categories = sorted(set(self.categories))
    self.brands = sorted({c * 8 + int(rng.integers(0, 8))
                          for c in self.categories})
    self.counts = {c: int(rng.integers(2, 8)) for c in self.categories}
    profile = [feature("101", uid), feature("121", int(rng.integers(0, 98))),
               feature("122", int(rng.integers(0, 13))),
               feature("124", int(rng.integers(0, 2))),
               feature("125", int(rng.integers(0, 7))),
               feature("126", int(rng.integers(0, 3))),
               feature("127", int(rng.integers(0, 3))),
               feature("128", int(rng.integers(0, 2))),
               feature("129", int(rng.integers(0, 4)))]
    profile += [feature("109_14", c, log_count(self.counts[c]))
                for c in self.categories]
    profile += [feature("127_14", b, log_count(int(rng.integers(2, 6))))
                for b in self.brands]
    profile += [feature("150_14", c * 4 + int(rng.integers(0, 4)),
                        log_count(int(rng.integers(2, 5))))
                for c in self.categories]
    self.profile = profile


def _impressions(rng: np.random.Generator, user: User, catalog: Catalog,
                 n: int) -> List[tuple]:
  """(item, click, conversion) of one visit, in browsing order."""
  out = []
  focus = None  # the category of the last click
  liked_brands = set(user.brands)
  for _ in range(n):
    draw = rng.random()
    if focus is not None and draw < 0.35:
      item = int(catalog.in_category(rng, focus, 1)[0])
    elif draw < 0.7:
      c = user.categories[int(rng.integers(0, len(user.categories)))]
      item = int(catalog.in_category(rng, c, 1)[0])
    else:
      item = int(catalog.popular(rng, 1)[0])
    c = int(catalog.category[item])
    p = 0.008
    if c in user.counts:
      p = 0.06 + (0.08 if int(catalog.brand[item]) in liked_brands else 0.0)
    click = int(rng.random() < p)
    if click:
      focus = c
      conversion = int(rng.random() < 0.1)
    else:
      conversion = int(rng.random() < INCONSISTENT_RATE)
    out.append((item, click, conversion))
  return out


def _skeleton_line(sample_id: int, key: str, position: int, item: int,
                   click: int, conversion: int, user: User,
                   catalog: Catalog) -> str:
  features, intentions = catalog.text[item]
  features = features + [feature("301", min(position, 99))]
  c = int(catalog.category[item])
  if c in user.counts:  # cross of the user's category count and the item's
    features.append(feature("508", c, log_count(user.counts[c])))
  if int(catalog.brand[item]) in user.brands:
    features.append(feature("702", int(catalog.brand[item]), log_count(2)))
  for t in intentions:
    if t // 4 in user.counts:
      features.append(feature("853", t, log_count(3)))
      break
  return (f"{sample_id},{click},{conversion},{key},{len(features)},"
          + "\x01".join(features) + "\n")


def generate(output_dir: str, impressions: int, seed: int = 11,
             impressions_per_visit: int = 20) -> Dict[str, int]:
  """Writes the four files under output_dir; returns row counts."""
  rng = np.random.default_rng(seed)
  num_users = max(20, impressions // 140)
  catalog = Catalog(rng, max(200, impressions // 14))
  users = [User(rng, u, catalog) for u in range(num_users)]
  # Visits: a user's activity is long-tailed; each visit has a time.
  activity = rng.pareto(1.5, num_users) + 1.0
  visits = max(num_users, impressions // impressions_per_visit)
  visit_user = rng.choice(num_users, size=visits, p=activity / activity.sum())
  visit_user[:num_users] = np.arange(num_users)  # every user visits
  visit_time = rng.random(visits)
  order = np.argsort(visit_time, kind="stable")
  sizes = rng.multinomial(impressions - visits, np.full(visits, 1.0 / visits)) + 1

  counts = {"train_impressions": 0, "test_impressions": 0,
            "train_common_features": 0, "test_common_features": 0}
  files: Dict[str, Dict[str, TextIO]] = {}
  for split in ("train", "test"):
    os.makedirs(os.path.join(output_dir, split), exist_ok=True)
    files[split] = {
        kind: open(os.path.join(output_dir, split, f"{kind}_{split}.csv"), "w",
                   encoding="utf-8", newline="\n")
        for kind in ("sample_skeleton", "common_features")}
  sample_id = {"train": 1, "test": 1}
  try:
    for v in order:
      split = "train" if visit_time[v] < TRAIN_SHARE else "test"
      user = users[int(visit_user[v])]
      key = f"{int(rng.integers(0, 2**63)):016x}"
      files[split]["common_features"].write(
          f"{key},{len(user.profile)}," + "\x01".join(user.profile) + "\n")
      counts[f"{split}_common_features"] += 1
      skeleton = files[split]["sample_skeleton"]
      for position, (item, click, conversion) in enumerate(
          _impressions(rng, user, catalog, int(sizes[v])), start=1):
        skeleton.write(_skeleton_line(sample_id[split], key, position, item,
                                      click, conversion, user, catalog))
        sample_id[split] += 1
        counts[f"{split}_impressions"] += 1
  finally:
    for pair in files.values():
      for f in pair.values():
        f.close()
  return counts


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--output", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "aliccp-sample"))
  parser.add_argument("--impressions", type=int, default=30_000)
  parser.add_argument("--seed", type=int, default=11)
  args = parser.parse_args()
  counts = generate(args.output, args.impressions, args.seed)
  print(f"wrote {args.output}: {counts}")


if __name__ == "__main__":
  main()
