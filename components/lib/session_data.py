"""What each data set's session examples hold, and how its raw examples
become the interactions the sessionizer orders.

Sessionization (components/sessionize/) is the same for every data set:
per user, interactions in order, leave-last-out splits, train windows. What
differs lives here, one `SessionData` per data set:

* which raw examples are interactions, and their order. MovieLens: every
  rating, by timestamp, ties in file order. Ali-CCP: the clicked impressions
  only (the others are counted); the data has no timestamps, so a user's
  clicks are taken in file order, the train file before the test file, by
  sample id within a file.
* the position features of a context, one or more values per context item
  (MovieLens: its rating, the movie's year and genre slots; Ali-CCP: the
  item's category, shop, brand and intention), and the user features.
* an item's entry in the catalog that ships with the pushed model.
* which user features are demographic slices of the evaluation (slices.py).

Plain Python (no TensorFlow): the config reads the feature lists.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple

from components.lib import features as F
from components.lib import slices

MOVIELENS = "movielens"
ALICCP = "aliccp"


class Interaction(NamedTuple):
  """One interaction of a user, as much of it as sessionization needs."""
  user_id: bytes
  item_id: bytes
  order: Tuple[int, ...]  # sorts a user's interactions
  rating: float  # session.min_rating filters on it (Ali-CCP clicks: 1.0)
  position: Tuple[Tuple[Any, ...], ...]  # values per position feature
  user: Tuple[Tuple[str, list], ...]  # (name, values) of the user features
  span: int = 0  # the span (period) of the data it came from


@dataclasses.dataclass(frozen=True)
class PositionFeature:
  """A context feature with values per context item. A `slotted` one keeps
  session.max_item_genres values per item, padded with ''; the others one
  value, 0 / '' when missing."""
  name: str
  type: str  # STRING, INT or FLOAT, as in the feature config
  slotted: bool = False

  @property
  def missing(self):
    return {"STRING": b"", "INT": 0, "FLOAT": 0.0}[self.type]


@dataclasses.dataclass(frozen=True)
class SessionData:
  name: str
  # Raw example features the conversion reads.
  raw_features: Tuple[str, ...]
  position_features: Tuple[PositionFeature, ...]
  user_features: Tuple[Tuple[str, str], ...]  # (name, type)
  # ({raw feature: values}, the span the example came from) -> the
  # interaction, or None when the example is not one (counted as `skipped`).
  interaction: Callable[[Dict[str, Sequence], int], Optional[Interaction]]
  catalog_entry: Callable[[Dict[str, Sequence]], Dict[str, Any]]
  # A catalog entry -> the item's own position features (what an app knows
  # of an item in a history), by feature name.
  item_features: Callable[[Dict[str, Any]], Dict[str, Any]]
  # {user feature: values} -> the user's demographic slices (slices.py).
  user_slices: Callable[[Dict[str, list]], Dict[str, bytes]]
  skipped: str = ""
  # Whether interactions carry ratings (a rating model can be trained).
  rated: bool = False

  def __post_init__(self):
    for p in self.position_features:  # serving tells them apart by the prefix
      assert p.name.startswith(F.CONTEXT_PREFIX), p.name


def _first(values: Dict[str, Sequence], name: str, default):
  found = values.get(name)
  return found[0] if found else default


# --- MovieLens ---------------------------------------------------------------

def _movielens_interaction(values: Dict[str, Sequence],
                           span: int) -> Interaction:
  rating = float(_first(values, F.RATING, 0.0))
  return Interaction(
      user_id=_first(values, F.USER_ID, b""),
      item_id=_first(values, F.ITEM_ID, b""),
      # By time; ties in span and file order.
      order=(int(_first(values, F.TIMESTAMP, 0)), span,
             int(_first(values, F.FILE_OFFSET, 0))),
      rating=rating,
      position=((rating,), (int(_first(values, F.ITEM_YEAR, 0)),),
                tuple(values.get(F.ITEM_GENRES, ()))),
      user=tuple((name, list(values[name])) for name in F.USER_FEATURES
                 if values.get(name)),
      span=span)


def _movielens_catalog_entry(values: Dict[str, Sequence]) -> Dict[str, Any]:
  return {"title": _first(values, F.ITEM_TITLE, b"").decode("utf-8"),
          "genres": [g.decode("utf-8") for g in values.get(F.ITEM_GENRES, ())],
          "year": int(_first(values, F.ITEM_YEAR, 0)) or None}


def _movielens_item_features(entry: Dict[str, Any]) -> Dict[str, Any]:
  return {F.CONTEXT_GENRE: list(entry.get("genres") or []),
          F.CONTEXT_YEAR: entry.get("year") or 0}


def _movielens_user_slices(user: Dict[str, list]) -> Dict[str, bytes]:
  found = {}
  if user.get(F.USER_GENDER):
    found[slices.USER_GENDER] = user[F.USER_GENDER][0]
  if user.get(F.USER_AGE):
    found[slices.USER_AGE] = slices.movielens_age_group(
        int(user[F.USER_AGE][0])).encode()
  return found


MOVIELENS_DATA = SessionData(
    name=MOVIELENS,
    raw_features=(F.USER_ID, F.ITEM_ID, F.RATING, F.TIMESTAMP, F.FILE_OFFSET,
                  F.ITEM_TITLE, F.ITEM_GENRES, F.ITEM_YEAR) + F.USER_FEATURES,
    position_features=(PositionFeature(F.CONTEXT_RATING, "FLOAT"),
                       PositionFeature(F.CONTEXT_YEAR, "INT"),
                       PositionFeature(F.CONTEXT_GENRE, "STRING", True)),
    user_features=((F.USER_GENDER, "STRING"), (F.USER_AGE, "INT"),
                   (F.USER_OCCUPATION, "STRING"), (F.USER_ZIPCODE, "STRING")),
    interaction=_movielens_interaction,
    catalog_entry=_movielens_catalog_entry,
    item_features=_movielens_item_features,
    user_slices=_movielens_user_slices,
    rated=True)


# --- Ali-CCP -----------------------------------------------------------------
# Raw impression features (components/example_gen/aliccp/, aliccp_format.py).
# Feature ids are numbers in the raw data; in session examples they are
# strings, so that TFLite's string-keyed tables look them up on the device.
ALICCP_ITEM = (("context_category", "item_category"),
               ("context_shop", "item_shop"),
               ("context_brand", "item_brand"),
               ("context_intention", "item_intention"))
ALICCP_USER = ("user_profile", "user_group", "user_gender", "user_age",
               "user_consumption_1", "user_consumption_2", "user_is_occupied",
               "user_geography")
ALICCP_SPLITS = ("train", "test")  # file order


def _id(value) -> bytes:
  return str(value).encode()


def _aliccp_interaction(values: Dict[str, Sequence],
                        span: int) -> Optional[Interaction]:
  if int(_first(values, "click", 0)) != 1:
    return None
  split = _first(values, "source_split", b"").decode()
  return Interaction(
      user_id=_id(_first(values, "user_id", "")),
      item_id=_id(_first(values, "item_id", "")),
      # No timestamps: spans, then the files, in order.
      order=(span, ALICCP_SPLITS.index(split),
             int(_first(values, "sample_id", 0))),
      rating=1.0,
      position=tuple((_id(values[raw][0]),) if values.get(raw) else ()
                     for _, raw in ALICCP_ITEM),
      user=tuple((name, [_id(v) for v in values[name]])
                 for name in ALICCP_USER if values.get(name)),
      span=span)


def _aliccp_catalog_entry(values: Dict[str, Sequence]) -> Dict[str, Any]:
  return {name[len(F.CONTEXT_PREFIX):]: str(values[raw][0]) if values.get(raw)
          else None for name, raw in ALICCP_ITEM}


def _aliccp_item_features(entry: Dict[str, Any]) -> Dict[str, Any]:
  return {name: entry.get(name[len(F.CONTEXT_PREFIX):]) or ""
          for name, _ in ALICCP_ITEM}


def _aliccp_user_slices(user: Dict[str, list]) -> Dict[str, bytes]:
  """Ali-CCP's gender and age are coded levels: sliced by the code."""
  return {name: user[raw][0] for name, raw in (
      (slices.USER_GENDER, "user_gender"), (slices.USER_AGE, "user_age"))
          if user.get(raw)}


ALICCP_DATA = SessionData(
    name=ALICCP,
    raw_features=("click", "source_split", "sample_id", "user_id", "item_id")
    + tuple(raw for _, raw in ALICCP_ITEM) + ALICCP_USER,
    position_features=tuple(PositionFeature(name, "STRING")
                            for name, _ in ALICCP_ITEM),
    user_features=tuple((name, "STRING") for name in ALICCP_USER),
    interaction=_aliccp_interaction,
    catalog_entry=_aliccp_catalog_entry,
    item_features=_aliccp_item_features,
    user_slices=_aliccp_user_slices,
    skipped="impressions_not_clicked")

DATASETS = {d.name: d for d in (MOVIELENS_DATA, ALICCP_DATA)}


def session_data(dataset: str) -> SessionData:
  if dataset not in DATASETS:
    raise ValueError(f"unknown data set {dataset!r}; known: "
                     f"{', '.join(DATASETS)}")
  return DATASETS[dataset]
