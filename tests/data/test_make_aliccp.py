"""The synthetic Ali-CCP generator writes the raw format, deterministically,
with structure a model can learn."""
import filecmp
import os
import re
import subprocess
import sys

import pytest

from data import make_aliccp
from pipeline import PROJECT_ROOT

ROOT = PROJECT_ROOT

FILES = [os.path.join(split, f"{kind}_{split}.csv") for split in ("train", "test")
         for kind in ("sample_skeleton", "common_features")]
FEATURE = re.compile(r"^([0-9]+(?:_14)?)\x02([0-9]+)\x03([0-9.]+)$")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("aliccp"))
  counts = make_aliccp.generate(out, impressions=6000, seed=3)
  return out, counts


def features(text):
  parsed = [FEATURE.match(f) for f in text.split("\x01")]
  assert all(parsed), text
  return [(m.group(1), int(m.group(2)), float(m.group(3))) for m in parsed]


def test_same_seed_same_bytes(generated, tmp_path):
  out, _ = generated
  make_aliccp.generate(str(tmp_path), impressions=6000, seed=3)
  for name in FILES:
    assert filecmp.cmp(os.path.join(out, name), os.path.join(tmp_path, name),
                       shallow=False), name


def test_lines_follow_the_raw_format(generated):
  out, counts = generated
  assert counts["train_impressions"] + counts["test_impressions"] == 6000
  for split in ("train", "test"):
    keys = {}
    with open(os.path.join(out, split, f"common_features_{split}.csv"),
              encoding="utf-8") as f:
      for line in f:
        key, num, rest = line.rstrip("\n").split(",", 2)
        fields = features(rest)
        assert int(num) == len(fields)
        assert {"101", "124", "125"} <= {field for field, _, _ in fields}
        keys[key] = True
    seen, previous_key, sample_id = set(), None, 0
    with open(os.path.join(out, split, f"sample_skeleton_{split}.csv"),
              encoding="utf-8") as f:
      for line in f:
        sid, click, conversion, key, num, rest = line.rstrip("\n").split(",", 5)
        sample_id += 1
        assert int(sid) == sample_id  # starts at 1, consecutive
        assert click in "01" and conversion in "01"
        assert re.fullmatch(r"[0-9a-f]{16}", key) and key in keys
        if key != previous_key:  # a key's rows are consecutive
          assert key not in seen
          seen.add(key)
          previous_key = key
        fields = features(rest)
        assert int(num) == len(fields)
        names = [field for field, _, _ in fields]
        assert names.count("205") == 1 and names.count("206") == 1
        for field, ident, _ in fields:  # each field in its own id range
          assert ident >= make_aliccp.BASE[field]


def test_clicks_follow_the_users_tastes(generated):
  """Impressions of a liked category (cross field 508 present) are clicked
  far more often than the others."""
  out, _ = generated
  clicks = {True: [0, 0], False: [0, 0]}
  with open(os.path.join(out, "train", "sample_skeleton_train.csv"),
            encoding="utf-8") as f:
    for line in f:
      _, click, _, _, _, rest = line.rstrip("\n").split(",", 5)
      liked = "\x01508\x02" in rest
      clicks[liked][0] += int(click)
      clicks[liked][1] += 1
  liked_rate = clicks[True][0] / clicks[True][1]
  other_rate = clicks[False][0] / clicks[False][1]
  assert liked_rate > 4 * other_rate


def test_generator_reproduces_the_committed_sample(tmp_path):
  committed = os.path.join(ROOT, "data", "aliccp-sample")
  subprocess.run([sys.executable, os.path.join(ROOT, "data", "make_aliccp.py"),
                  "--output", str(tmp_path)], check=True, timeout=300)
  for split in ("train", "test"):
    for kind in ("sample_skeleton", "common_features"):
      name = os.path.join(split, f"{kind}_{split}.csv")
      assert filecmp.cmp(tmp_path / name, os.path.join(committed, name),
                         shallow=False), name
