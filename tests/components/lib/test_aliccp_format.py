"""Ali-CCP line parsers: fields, multi-valued and weighted features, bad lines."""
import os

import pytest

from components.lib import aliccp_format as A
from components.lib.ingestion import IngestionError, MalformedLineError
from data import make_aliccp


def features(*entries):
  return "\x01".join(f"{f}\x02{i}\x03{v}" for f, i, v in entries)


SKELETON = "7,1,0,bacff91692951881,4," + features(
    ("205", 4186222, "1.0"), ("210", 9000001, "1.0"), ("210", 9000002, "1.0"),
    ("508", 9351665, "1.60944"))
COMMON = "bacff91692951881,3," + features(
    ("101", 31319, "1.0"), ("109_14", 2001, "0.69315"), ("109_14", 2002, "1.09861"))


def test_skeleton_line():
  row = A.parse_skeleton(SKELETON)
  assert (row.sample_id, row.click, row.conversion, row.key) == (
      7, 1, 0, "bacff91692951881")
  named = A.named_features(row.features, A.SKELETON_FIELDS)
  assert named["item_id"] == [4186222]
  assert named["item_intention"] == [9000001, 9000002]  # multi-valued
  assert named["cross_user_category_item_category"] == [9351665]
  assert named["cross_user_category_item_category_weight"] == [1.60944]
  assert "item_id_weight" not in named  # plain categorical: value dropped


def test_common_features_line():
  row = A.parse_common_features(COMMON)
  named = A.named_features(row.features, A.USER_FIELDS)
  assert named == {"user_id": [31319], "user_categories": [2001, 2002],
                   "user_categories_weight": [0.69315, 1.09861]}


@pytest.mark.parametrize("line, reason", [
    ("7,1,0,bacff91692951881,5," + SKELETON.split(",", 5)[5], "feature_num is 5"),
    ("7,1,0,bacff91692951881", "6 comma-separated columns"),
    ("x,1,0,bacff91692951881,0,", "sample_id 'x'"),
    ("7,2,0,bacff91692951881,0,", "must be 0 or 1"),
    ("7,1,0,BACF,0,", "lowercase hex"),
    ("7,1,0,bacf,1,999\x021\x031.0", "unknown field '999'"),
    ("7,1,0,bacf,1,205\x021", "field\\x02id\\x03value"),
    ("7,1,0,bacf,1,205\x02z\x031.0", "field 205: id 'z'"),
    ("7,1,0,bacf,1,205\x021\x03one", "value 'one'"),
    ("7,1,0,bacf,1,101\x021\x031.0", "unknown field '101'"),  # a user field
])
def test_malformed_skeleton_lines_say_why(line, reason):
  with pytest.raises(MalformedLineError, match=reason.replace("\\", "\\\\")
                     .replace("(", "\\(")):
    A.parse_skeleton(line)


def test_detect_files_needs_both_files_of_a_split(tmp_path):
  make_aliccp.generate(str(tmp_path), impressions=500, seed=1)
  files = A.detect_files(str(tmp_path))
  assert set(files) == {"train", "test"}
  os.remove(A.common_features_path(str(tmp_path), "test"))
  with pytest.raises(IngestionError, match="common_features_test.csv"):
    A.detect_files(str(tmp_path))
  with pytest.raises(IngestionError, match="sample_skeleton_train.csv"):
    A.detect_files(str(tmp_path / "nothing"))


def test_generated_lines_parse(tmp_path):
  """Every line the generator writes parses (the two sides agree)."""
  root = str(tmp_path)
  make_aliccp.generate(root, impressions=800, seed=2)
  for split in ("train", "test"):
    with open(A.skeleton_path(root, split), encoding="utf-8") as f:
      rows = [A.parse_skeleton(line.rstrip("\n")) for line in f]
    with open(A.common_features_path(root, split), encoding="utf-8") as f:
      keys = {A.parse_common_features(line.rstrip("\n")).key for line in f}
    assert rows and {r.key for r in rows} <= keys
