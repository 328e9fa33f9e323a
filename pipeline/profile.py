"""The shape of a data set, read before the pipeline runs: what the default
settings adapt to (pipeline/adaptive.py).

One quick pass over the raw interactions, without Beam: users, items,
interactions and the lengths of the users' train histories under
../shared/PROTOCOL.md (each user's interactions but the eval and the test
one; users with fewer than three left out). MovieLens is read whole (its
ratings file: ML-1M's million lines in a few seconds). Ali-CCP's users are
in the common-features file, joined to the clicks of the skeleton, so only
the first MAX_ALICCP_BYTES of each train file are read and the profile says
it is a sample. Lines that do not parse are skipped here: ingestion reports
them.
"""
import collections
import dataclasses
import os
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import tensorflow as tf

from components.lib import aliccp_format as A
from components.lib import movielens_formats as M
from components.lib import session_data
from components.lib import spans
from components.lib.ingestion import MalformedLineError
from components.lib.settings import DataConfig, SessionConfig

MAX_ALICCP_BYTES = 64 * 2**20
# Quantiles of the train-history lengths a profile keeps.
QUANTILES = (50, 80, 90)


@dataclasses.dataclass(frozen=True)
class DataProfile:
  users: int  # with at least min_timeline_length interactions
  items: int
  interactions: int
  # {quantile: train-history length} over the users, e.g. {80: 212}.
  history_quantiles: Dict[int, int]
  # Read from the first bytes of the files only (Ali-CCP).
  sampled: bool = False

  def describe(self) -> str:
    lengths = ", ".join(f"p{q} {n}" for q, n in
                        sorted(self.history_quantiles.items()))
    return (f"{self.users:,} users, {self.items:,} items, "
            f"{self.interactions:,} interactions; train history length "
            f"{lengths}" + (" (a sample of the files)" if self.sampled else ""))


def from_timelines(lengths: List[int], items: int,
                   session: SessionConfig, sampled: bool = False
                   ) -> DataProfile:
  """The profile of users with `lengths` interactions each over `items`."""
  kept = np.array([n for n in lengths if n >= session.min_timeline_length],
                  np.int64)
  train = kept - 2
  return DataProfile(
      users=len(kept), items=items, interactions=int(kept.sum()),
      history_quantiles={q: int(np.percentile(train, q)) if len(train) else 0
                         for q in QUANTILES},
      sampled=sampled)


def _lines(path: str, encoding: str, skip_first: bool = False,
           max_bytes: Optional[int] = None) -> Iterator[str]:
  read = 0
  with tf.io.gfile.GFile(path, "rb") as f:
    if skip_first:
      f.readline()
    for raw in f:
      read += len(raw)
      if max_bytes is not None and read > max_bytes:
        return
      yield raw.decode(encoding, errors="replace").rstrip("\r\n")


def _parsed(lines: Iterator[str], parse: Callable[[str], Any]
            ) -> Iterator[Any]:
  """The lines `parse` accepts. The others are left to ExampleGen, which
  counts and reports them: the profile only needs the data's shape."""
  for line in lines:
    if not line.strip():
      continue
    try:
      yield parse(line)
    except (MalformedLineError, ValueError):
      continue


def _movielens(data_dir: str, data: DataConfig,
               session: SessionConfig) -> DataProfile:
  per_user: Dict[str, int] = collections.Counter()
  items = set()
  for directory in spans.window_dirs(data_dir, data.span_window):
    files = M.detect_files(directory, data.layout, data.encoding,
                           spans.catalog_dirs(data_dir))
    for rating in _parsed(_lines(files.ratings, files.encoding(files.ratings),
                                 skip_first=files.format.header),
                          files.format.parse_rating):
      if (session.min_rating is not None
          and rating.rating < session.min_rating):
        continue
      per_user[rating.user_id] += 1
      items.add(rating.item_id)
  return from_timelines(list(per_user.values()), len(items), session)


def _aliccp(data_dir: str, data: DataConfig,
            session: SessionConfig) -> DataProfile:
  clicks: Dict[float, int] = collections.Counter()
  items = set()
  sampled = False
  for directory in spans.window_dirs(data_dir, data.span_window):
    skeleton, common = A.detect_files(directory)["train"]
    user_of = {}
    for row in _parsed(_lines(common, "utf-8", max_bytes=MAX_ALICCP_BYTES),
                       A.parse_common_features):
      users = A.named_features(row.features, A.USER_FIELDS).get("user_id")
      if users:
        user_of[row.key] = users[0]
    for row in _parsed(_lines(skeleton, "utf-8", max_bytes=MAX_ALICCP_BYTES),
                       A.parse_skeleton):
      item = A.named_features(row.features, A.SKELETON_FIELDS).get("item_id")
      if row.click and item and row.key in user_of:
        clicks[user_of[row.key]] += 1
        items.add(item[0])
    sampled = sampled or any(
        tf.io.gfile.stat(path).length > MAX_ALICCP_BYTES
        for path in (skeleton, common))
  return from_timelines(list(clicks.values()), len(items), session, sampled)


def profile(data: DataConfig, session: SessionConfig) -> DataProfile:
  """The profile of `data.data_dir` (errors name a missing or bad file)."""
  read = _aliccp if data.dataset == session_data.ALICCP else _movielens
  return read(os.path.abspath(data.data_dir) if "://" not in data.data_dir
              else data.data_dir, data, session)
