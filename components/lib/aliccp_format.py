"""The raw Ali-CCP format (../shared/data/aliccp/FORMAT.md) and its parsers.

Two files per split: the skeleton (one impression per line: sample id, click,
conversion, join key, its own features) and the common features (user-side
features per join key). A feature list is `field \\x02 feature_id \\x03 value`
entries joined by `\\x01`; a field may repeat (multi-valued).

Fields map to named features. Categorical fields keep their feature ids
(int64 lists, several for a multi-valued field); where the value carries
information (the `*_14` user-behaviour fields and the cross fields, ln of a
count) a parallel `<name>_weight` float list keeps it. A plain categorical
value is 1.0 and is not kept.

Parsers take one decoded line and return a tuple, or raise MalformedLineError
with the reason; they are plain functions so that they pickle into Beam.
"""
from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Tuple

import tensorflow as tf

from components.lib.ingestion import (IngestionError, MalformedLineError,
                                      parse_float, parse_int, require_file)

# field id -> (feature name, keeps the value as a weight)
USER_FIELDS = {
    "101": ("user_id", False), "121": ("user_profile", False),
    "122": ("user_group", False), "124": ("user_gender", False),
    "125": ("user_age", False), "126": ("user_consumption_1", False),
    "127": ("user_consumption_2", False), "128": ("user_is_occupied", False),
    "129": ("user_geography", False), "109_14": ("user_categories", True),
    "110_14": ("user_shops", True), "127_14": ("user_brands", True),
    "150_14": ("user_intentions", True),
}
ITEM_FIELDS = {
    "205": ("item_id", False), "206": ("item_category", False),
    "207": ("item_shop", False), "210": ("item_intention", False),
    "216": ("item_brand", False), "301": ("position", False),
}
CROSS_FIELDS = {
    "508": ("cross_user_category_item_category", True),
    "509": ("cross_user_shop_item_shop", True),
    "702": ("cross_user_brand_item_brand", True),
    "853": ("cross_user_intention_item_intention", True),
}
SKELETON_FIELDS = {**ITEM_FIELDS, **CROSS_FIELDS}
WEIGHT_SUFFIX = "_weight"

SPLITS = ("train", "test")
# Rows with click 0 and conversion 1 cannot happen (a conversion follows a
# click); like the common loaders, ingestion drops them and counts them.
INCONSISTENT = "inconsistent_click_conversion"


class Feature(NamedTuple):
  field: str
  feature_id: int
  value: float


class SkeletonRow(NamedTuple):
  sample_id: int
  click: int
  conversion: int
  key: str
  features: Tuple[Feature, ...]


class CommonRow(NamedTuple):
  key: str
  features: Tuple[Feature, ...]


def skeleton_path(root: str, split: str) -> str:
  return os.path.join(root, split, f"sample_skeleton_{split}.csv")


def common_features_path(root: str, split: str) -> str:
  return os.path.join(root, split, f"common_features_{split}.csv")


def detect_files(root: str) -> Dict[str, Tuple[str, str]]:
  """split -> (skeleton, common features) for the splits present under root.

  The train split is required; test is optional. A split with one of its two
  files missing is an error naming the missing file.
  """
  files = {}
  for split in SPLITS:
    skeleton, common = skeleton_path(root, split), common_features_path(root, split)
    if (tf.io.gfile.exists(skeleton) or tf.io.gfile.exists(common)
        or split == "train"):
      files[split] = (require_file(skeleton, f"Ali-CCP {split} skeleton"),
                      require_file(common, f"Ali-CCP {split} common features"))
  if not files:
    raise IngestionError(f"no Ali-CCP files under {root}")
  return files


def parse_feature_list(text: str, count: int,
                       known: Dict[str, Tuple[str, bool]]) -> Tuple[Feature, ...]:
  """Features of a feature_list; `count` is the line's feature_num."""
  entries = text.split("\x01") if text else []
  if len(entries) != count:
    raise MalformedLineError(
        f"feature_num is {count} but the feature list has {len(entries)}")
  features = []
  for entry in entries:
    field, sep1, rest = entry.partition("\x02")
    feature_id, sep2, value = rest.partition("\x03")
    if not (sep1 and sep2):
      raise MalformedLineError(f"feature {entry[:40]!r} is not "
                               "field\\x02id\\x03value")
    if field not in known:
      raise MalformedLineError(f"unknown field {field!r}")
    features.append(Feature(
        field, parse_int(feature_id, f"field {field}: id"),
        parse_float(value, f"field {field}: value")))
  return tuple(features)


def parse_skeleton(text: str) -> SkeletonRow:
  parts = text.split(",", 5)
  if len(parts) != 6:
    raise MalformedLineError(f"expected 6 comma-separated columns, got "
                             f"{len(parts)}")
  sample_id, click, conversion, key, count, feature_list = parts
  click_value = parse_int(click, "click")
  conversion_value = parse_int(conversion, "conversion")
  if click_value not in (0, 1) or conversion_value not in (0, 1):
    raise MalformedLineError(
        f"click and conversion must be 0 or 1, got {click}, {conversion}")
  return SkeletonRow(
      parse_int(sample_id, "sample_id"), click_value, conversion_value,
      _key(key), parse_feature_list(
          feature_list, parse_int(count, "feature_num"), SKELETON_FIELDS))


def parse_common_features(text: str) -> CommonRow:
  parts = text.split(",", 2)
  if len(parts) != 3:
    raise MalformedLineError(f"expected 3 comma-separated columns, got "
                             f"{len(parts)}")
  key, count, feature_list = parts
  return CommonRow(_key(key), parse_feature_list(
      feature_list, parse_int(count, "feature_num"), USER_FIELDS))


def _key(text: str) -> str:
  if not text or any(c not in "0123456789abcdef" for c in text):
    raise MalformedLineError(
        f"common_feature_index {text!r} is not lowercase hex")
  return text


def named_features(features: Tuple[Feature, ...],
                   known: Dict[str, Tuple[str, bool]]
                   ) -> Dict[str, List[float]]:
  """name -> ids (and `<name>_weight` -> values where the value is kept),
  in line order."""
  out: Dict[str, List[float]] = {}
  for f in features:
    name, weighted = known[f.field]
    out.setdefault(name, []).append(f.feature_id)
    if weighted:
      out.setdefault(name + WEIGHT_SUFFIX, []).append(f.value)
  return out
