"""DiskGroupByKey groups exactly as Beam's GroupByKey, bucket by bucket."""
import os
import subprocess
import sys

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
import numpy as np
import pytest

from components.lib import disk_group


def normalized(grouped):
  key, values = grouped
  return key, sorted(values)


def random_input(seed=0):
  rng = np.random.default_rng(seed)
  return [((str(rng.choice(["train", "test"])), f"k{rng.integers(0, 400)}"),
           (int(i), bool(i % 2), b"x" * int(i % 7))) for i in range(2500)]


@pytest.mark.parametrize("num_buckets", [0, 1, 7])
def test_groups_like_groupbykey(tmp_path, num_buckets):
  rows = random_input()
  expected = {}
  for key, value in rows:
    expected.setdefault(key, []).append(value)
  expected = [normalized(kv) for kv in expected.items()]
  with beam.Pipeline() as p:
    grouped = disk_group.group_by_key(p | beam.Create(rows),
                                      str(tmp_path / "spill"), num_buckets,
                                      "Group")
    assert_that(grouped | beam.Map(normalized), equal_to(expected))
  spilled = os.listdir(tmp_path / "spill") if num_buckets else []
  # Every bucket got a file (800 keys over 7 buckets), named by bucket.
  assert {name.split("-")[1] for name in spilled} == {
      f"{b:05d}" for b in range(num_buckets)}


def test_bucket_of_a_key_is_the_same_in_every_process():
  keys = ["a", "common_feature_index_1", b"bytes", 12345, ("t", 1)]
  here = [disk_group.bucket_of(k, 97) for k in keys]
  code = ("from components.lib import disk_group; print([disk_group.bucket_of(k, 97)"
          f" for k in {keys!r}])")
  other = subprocess.run([sys.executable, "-c", code], check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
  assert other.stdout.strip() == str(here)
  assert len(set(here)) > 1


def test_bucket_count_follows_the_input_size():
  assert disk_group.buckets_for(0, 100) == 1
  assert disk_group.buckets_for(100, 100) == 1
  assert disk_group.buckets_for(101, 100) == 2


def test_a_truncated_spill_file_is_an_error(tmp_path):
  path = str(tmp_path / "bucket-00000-x")
  spill = disk_group._Spill(str(tmp_path), 1)  # pylint: disable=protected-access
  spill.start_bundle()
  spill.process(("key", b"value"))
  list(spill.finish_bundle())
  written = [str(tmp_path / n) for n in os.listdir(tmp_path)]
  assert list(disk_group.read_spill_file(written[0])) == [("key", b"value")]
  with open(written[0], "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:-2])
  with pytest.raises(IOError, match="truncated spill file"):
    list(disk_group.read_spill_file(path))
