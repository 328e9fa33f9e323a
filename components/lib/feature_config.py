"""Feature-group configuration: which session features the model reads, how.

In the spirit of the TFLite on-device recommendation reference's input config:
every feature has a name (a session-example feature), a type (INT, STRING,
FLOAT), a fixed length, a vocabulary source and an embedding dimension;
features are grouped, each group is encoded by its own encoder, and the group
encodings are combined into the context encoding; one label feature is
predicted. Two kinds of groups exist:

* `sequence`: features aligned with the context positions (the context item
  and its rating, year, genres); `length` is the number of values per item
  (genres have several slots per item). Encoded by a context encoder (bow,
  cnn, lstm, gru, attention); the group's default is `model.encoder`.
* `static`: per-example features (the user's gender, age, ...); `length`
  values each, pooled by a masked mean.

Vocabulary sources: `vocabulary: NAME` (STRING features; a TFT vocabulary
computed on the train split, shared by features naming the same NAME) or
`buckets: {start, width, count}` (INT and FLOAT features; fixed-width buckets,
arithmetic that TFLite runs with builtin ops). A group marked `optional` is
dropped when the data set lacks its features (MovieLens CSV has no users).

A config is checked before the pipeline starts; a wrong name, type or length
is an error naming the field.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence

import yaml

from components.lib import features as F
from components.lib.session_data import MOVIELENS, session_data

TYPES = ("INT", "STRING", "FLOAT")
SEQUENCE = "sequence"
STATIC = "static"
SEQUENCE_ENCODERS = ("bow", "cnn", "lstm", "gru", "attention")


class FeatureConfigError(ValueError):
  """A feature config that does not fit the data; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Buckets:
  start: float
  width: float
  count: int


@dataclasses.dataclass(frozen=True)
class Feature:
  name: str
  type: str
  length: int
  embedding_dim: int
  vocabulary: str = ""
  buckets: Optional[Buckets] = None

  @property
  def num_ids(self) -> Optional[int]:
    """Embedding rows for bucketized features (vocabularies: from TFT)."""
    return self.buckets.count + F.NUM_RESERVED_IDS if self.buckets else None

  def index_count(self, vocabulary_sizes: Dict[str, int]) -> int:
    """The indices this feature takes (its embedding's rows): its buckets'
    or its vocabulary's, the reserved ones included."""
    return self.num_ids or vocabulary_sizes[self.vocabulary]


@dataclasses.dataclass(frozen=True)
class Group:
  name: str
  kind: str
  features: Sequence[Feature]
  encoder: str = ""
  optional: bool = False


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
  groups: Sequence[Group]
  label: Feature

  def all_features(self) -> List[Feature]:
    return [f for g in self.groups for f in g.features] + [self.label]

  def input_names(self) -> List[str]:
    """The features of the groups: what the retrieval model reads."""
    return [f.name for g in self.groups for f in g.features]

  def static_features(self) -> List[Feature]:
    return [f for g in self.groups if g.kind == STATIC for f in g.features]

  def sequence_features(self) -> List[Feature]:
    """The features of the sequence group: values per context item."""
    (sequence,) = [g for g in self.groups if g.kind == SEQUENCE]
    return list(sequence.features)

  def item_attributes(self) -> List[Feature]:
    """The sequence features that describe the item itself (year, genres,
    ...): not the item id, and not the rating, which belongs to the
    interaction. The rating model's candidate features."""
    return [f for f in self.sequence_features()
            if f.name not in (F.CONTEXT_ITEM_ID, F.CONTEXT_RATING)]

  def with_item_embedding_dim(self, dim: int) -> "FeatureConfig":
    """A copy whose item embeddings (the label's, and every feature of its
    vocabulary) are `dim` wide."""
    def resized(feature: Feature) -> Feature:
      return (dataclasses.replace(feature, embedding_dim=dim)
              if feature.vocabulary == self.label.vocabulary else feature)
    return FeatureConfig(
        groups=tuple(dataclasses.replace(
            g, features=tuple(resized(f) for f in g.features))
                     for g in self.groups),
        label=resized(self.label))

  @property
  def label_counts_vocabulary(self) -> str:
    """The TFT vocabulary of the label's items with their train counts."""
    return self.label.vocabulary + "_counts"

  def vocabularies(self) -> List[str]:
    """Distinct TFT vocabulary names, in first-use order."""
    names: List[str] = []
    for feature in self.all_features():
      if feature.vocabulary and feature.vocabulary not in names:
        names.append(feature.vocabulary)
    return names

  def to_dict(self) -> Dict[str, Any]:
    """The YAML/JSON form that `parse` reads (what components receive)."""
    def feature(f: Feature) -> Dict[str, Any]:
      out = {"name": f.name, "type": f.type, "length": f.length,
             "embedding_dim": f.embedding_dim}
      if f.vocabulary:
        out["vocabulary"] = f.vocabulary
      if f.buckets:
        out["buckets"] = dataclasses.asdict(f.buckets)
      return out
    return {
        "groups": [{"name": g.name, "type": g.kind, "encoder": g.encoder,
                    "optional": g.optional,
                    "features": [feature(f) for f in g.features]}
                   for g in self.groups],
        "label": feature(self.label),
    }


# The session features a config may use: name -> (type, kind, length rule).
# Lengths are per item for sequence features, per example for static ones.
def available_features(max_item_genres: int,
                       dataset: str = MOVIELENS) -> Dict[str, tuple]:
  data = session_data(dataset)
  known = {F.CONTEXT_ITEM_ID: ("STRING", SEQUENCE, 1)}
  for p in data.position_features:
    known[p.name] = (p.type, SEQUENCE, max_item_genres if p.slotted else 1)
  for name, kind in data.user_features:
    known[name] = (kind, STATIC, 1)
  known[F.LABEL_ITEM_ID] = ("STRING", "label", 1)
  return known


def _require(ok: bool, field: str, why: str) -> None:
  if not ok:
    raise FeatureConfigError(f"{field}: {why}")


def _feature(raw: Any, field: str) -> Feature:
  _require(isinstance(raw, dict), field, "expected a mapping")
  known = {f.name for f in dataclasses.fields(Feature)}
  for key in raw:
    _require(key in known, f"{field}.{key}",
             f"unknown key (known: {', '.join(sorted(known))})")
  for key in ("name", "type", "length", "embedding_dim"):
    _require(key in raw, f"{field}.{key}", "missing")
  _require(raw["type"] in TYPES, f"{field}.type",
           f"{raw['type']!r} is not one of {', '.join(TYPES)}")
  for key in ("length", "embedding_dim"):
    _require(isinstance(raw[key], int) and raw[key] >= 1, f"{field}.{key}",
             f"must be a positive integer, got {raw[key]!r}")
  buckets = raw.get("buckets")
  if buckets is not None:
    _require(isinstance(buckets, dict) and set(buckets) == {
        "start", "width", "count"}, f"{field}.buckets",
             "expected {start, width, count}")
    _require(buckets["width"] > 0, f"{field}.buckets.width", "must be > 0")
    _require(isinstance(buckets["count"], int) and buckets["count"] >= 1,
             f"{field}.buckets.count", "must be a positive integer")
    buckets = Buckets(float(buckets["start"]), float(buckets["width"]),
                      int(buckets["count"]))
  feature = Feature(name=raw["name"], type=raw["type"], length=raw["length"],
                    embedding_dim=raw["embedding_dim"],
                    vocabulary=raw.get("vocabulary", "") or "",
                    buckets=buckets)
  if feature.type == "STRING":
    _require(bool(feature.vocabulary) and buckets is None, field,
             "a STRING feature needs a `vocabulary` (and no buckets)")
  else:
    _require(buckets is not None and not feature.vocabulary, field,
             f"an {feature.type} feature needs `buckets` (vocabularies of "
             "numbers would need int64 lookups, which TFLite lacks)")
  return feature


def parse(raw: Any) -> FeatureConfig:
  """Builds a FeatureConfig from its YAML/JSON form (structure checks)."""
  _require(isinstance(raw, dict), "feature config", "expected a mapping")
  for key in raw:
    _require(key in ("groups", "label"), key, "unknown key (groups, label)")
  _require(isinstance(raw.get("groups"), list) and raw["groups"], "groups",
           "expected a non-empty list")
  groups = []
  for i, group in enumerate(raw["groups"]):
    field = f"groups[{i}]"
    _require(isinstance(group, dict), field, "expected a mapping")
    for key in group:
      _require(key in ("name", "type", "features", "encoder", "optional"),
               f"{field}.{key}", "unknown key")
    _require(group.get("type") in (SEQUENCE, STATIC), f"{field}.type",
             f"expected {SEQUENCE} or {STATIC}, got {group.get('type')!r}")
    _require(isinstance(group.get("features"), list) and group["features"],
             f"{field}.features", "expected a non-empty list")
    encoder = group.get("encoder", "") or ""
    if group["type"] == SEQUENCE:
      _require(not encoder or encoder in SEQUENCE_ENCODERS, f"{field}.encoder",
               f"{encoder!r} is not one of {', '.join(SEQUENCE_ENCODERS)}")
    else:
      _require(encoder in ("", "bow"), f"{field}.encoder",
               "static groups are pooled (bow)")
    groups.append(Group(
        name=str(group.get("name") or f"group{i}"), kind=group["type"],
        features=tuple(_feature(f, f"{field}.features[{j}]")
                       for j, f in enumerate(group["features"])),
        encoder=encoder, optional=bool(group.get("optional", False))))
  _require("label" in raw, "label", "missing")
  return FeatureConfig(tuple(groups), _feature(raw["label"], "label"))


def validate(config: FeatureConfig, max_item_genres: int,
             dataset: str = MOVIELENS) -> None:
  """Checks every feature against what the data set's session examples
  hold."""
  known = available_features(max_item_genres, dataset)
  seen = set()
  sequences = [g for g in config.groups if g.kind == SEQUENCE]
  _require(len(sequences) == 1, "groups",
           f"expected exactly one {SEQUENCE} group, found {len(sequences)}")
  for i, group in enumerate(config.groups):
    for j, feature in enumerate(group.features):
      field = f"groups[{i}].features[{j}]"
      _require(feature.name in known, f"{field}.name",
               f"{feature.name!r} is not a session feature (known: "
               f"{', '.join(sorted(n for n in known if n != F.LABEL_ITEM_ID))})")
      _require(feature.name not in seen, f"{field}.name",
               f"{feature.name!r} appears twice")
      seen.add(feature.name)
      kind_type, kind, length = known[feature.name]
      _require(feature.type == kind_type, f"{field}.type",
               f"{feature.name} is {kind_type}, not {feature.type}")
      _require(kind == group.kind, f"{field}.name",
               f"{feature.name} is a {kind} feature, not {group.kind}")
      _require(feature.length == length, f"{field}.length",
               f"{feature.name} has {length} value(s) per "
               f"{'item' if kind == SEQUENCE else 'example'} "
               f"(session.max_item_genres for genres), not {feature.length}")
  _require(any(f.name == F.CONTEXT_ITEM_ID for f in sequences[0].features),
           f"groups[{config.groups.index(sequences[0])}].features",
           f"the {SEQUENCE} group must include {F.CONTEXT_ITEM_ID}")
  label = config.label
  _require(label.name == F.LABEL_ITEM_ID, "label.name",
           f"the label is {F.LABEL_ITEM_ID}, not {label.name!r}")
  _require(label.type == "STRING" and label.length == 1, "label",
           "the label is one STRING value")
  item = next(f for f in sequences[0].features if f.name == F.CONTEXT_ITEM_ID)
  _require(item.vocabulary == label.vocabulary, "label.vocabulary",
           f"context and label items must share a vocabulary "
           f"({item.vocabulary!r} vs {label.vocabulary!r})")


def resolve(config: FeatureConfig, has_user_features: bool) -> FeatureConfig:
  """Drops optional groups of user features when the data has no users."""
  groups = tuple(
      g for g in config.groups
      if not (g.optional and not has_user_features and g.kind == STATIC))
  return dataclasses.replace(config, groups=groups)


def load(path: str) -> FeatureConfig:
  """Reads and parses a feature config file (YAML or JSON)."""
  try:
    with open(path, encoding="utf-8") as f:
      raw = yaml.safe_load(f)
  except OSError as e:
    raise FeatureConfigError(f"cannot read feature config {path}: {e}") from e
  except yaml.YAMLError as e:
    raise FeatureConfigError(f"{path}: not valid YAML: {e}") from e
  try:
    return parse(raw)
  except FeatureConfigError as e:
    raise FeatureConfigError(f"{path}: {e}") from None
