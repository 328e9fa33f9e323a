"""The slices TFMA reports metrics on, as features of the eval and test
session examples.

TFMA slices by feature values, and the slices users ask about are not raw
features: a user's history length falls into a bucket, a target's popularity
is a tier of the train-split frequency (which only exists after every user
is sessionized), and demographics are coded differently per data set. The
sessionizer writes them onto each eval and test example as one-value string
features named `slice_*`, so the EvalConfig slices on them by name, the
candidate and the baseline model see the same slices, and a notebook that
opens the examples or TFMA's output sees the same names.

* slice_history_length: interactions before the target, bucketed by
  `eval.history_length_edges` ("<10", "10-19", ..., "200+"; the slice
  settings are components/lib/settings.py's SliceConfig).
* slice_target_popularity: the target's train frequency tier: `head` is the
  most frequent items that together make the first `popularity_shares[0]` of
  the train interactions, `torso` the next ones up to
  `popularity_shares[1]`, `tail` the rest, `unseen` an item never trained on.
* slice_user_gender, slice_user_age: where the data set has them (MovieLens
  1M and 100K; Ali-CCP's coded levels). MovieLens ages are put into ML-1M's
  age groups, so ML-100K's exact ages slice the same way.
"""
from typing import Dict, Iterable, List, Sequence, Tuple

HISTORY_LENGTH = "slice_history_length"
TARGET_POPULARITY = "slice_target_popularity"
USER_GENDER = "slice_user_gender"
USER_AGE = "slice_user_age"
# Every slice feature, in the order reports list them.
FEATURES = (HISTORY_LENGTH, TARGET_POPULARITY, USER_GENDER, USER_AGE)

HEAD, TORSO, TAIL, UNSEEN = "head", "torso", "tail", "unseen"
TIERS = (HEAD, TORSO, TAIL, UNSEEN)

# ML-1M's age groups by their lower bound (the value ML-1M's users.dat holds).
MOVIELENS_AGE_GROUPS = ((1, "under 18"), (18, "18-24"), (25, "25-34"),
                        (35, "35-44"), (45, "45-49"), (50, "50-55"),
                        (56, "56+"))


def history_length_buckets(edges: Sequence[int]) -> List[str]:
  """The bucket names, shortest histories first."""
  names = [f"<{edges[0]}"]
  names += [f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])]
  return names + [f"{edges[-1]}+"]


def history_length_bucket(length: int, edges: Sequence[int]) -> str:
  names = history_length_buckets(edges)
  return names[sum(length >= edge for edge in edges)]


def popularity_tiers(counts: Iterable[Tuple[bytes, int]],
                     shares: Sequence[float]) -> Dict[bytes, str]:
  """{item: head|torso|tail} from train counts (see the module docstring).

  An item is in the tier where the interactions of the more frequent items
  (ties broken by id) end, so the head always holds at least one item.
  """
  ordered = sorted(counts, key=lambda kv: (-kv[1], kv[0]))
  total = float(sum(count for _, count in ordered)) or 1.0
  tiers, before = {}, 0
  for item, count in ordered:
    share = before / total
    tiers[item] = (HEAD if share < shares[0] else
                   TORSO if share < shares[1] else TAIL)
    before += count
  return tiers


def movielens_age_group(age: int) -> str:
  """ML-1M's group of an age (an ML-1M code or an exact ML-100K age)."""
  group = MOVIELENS_AGE_GROUPS[0][1]
  for lower, name in MOVIELENS_AGE_GROUPS:
    if age >= lower:
      group = name
  return group


def tier_order(name: str) -> Tuple[int, str]:
  """Sort key of slice values: buckets and tiers in their natural order."""
  if name in TIERS:
    return TIERS.index(name), name
  groups = [g for _, g in MOVIELENS_AGE_GROUPS]
  if name in groups:
    return groups.index(name), name
  if name.startswith("<"):
    return -1, name
  digits = name.split("-")[0].rstrip("+")
  return (int(digits), name) if digits.isdigit() else (10**9, name)
