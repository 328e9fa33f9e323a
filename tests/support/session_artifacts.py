"""Session Examples artifacts (Sessionize's layout) written by tests."""
import os
from typing import Dict, Iterable

import tensorflow as tf
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.lib import features as F


def sessions_artifact(uri: str, splits: Dict[str, Iterable[bytes]]
                      ) -> standard_artifacts.Examples:
  """An Examples artifact at `uri` with every session split, holding the
  serialized examples {split: records} in gzipped TFRecords."""
  sessions = standard_artifacts.Examples()
  sessions.uri = uri
  sessions.split_names = artifact_utils.encode_split_names(
      list(F.SESSION_SPLITS))
  for split, records in splits.items():
    directory = artifact_utils.get_split_uri([sessions], split)
    os.makedirs(directory, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(directory, "data.gz"),
                              options="GZIP") as writer:
      for record in records:
        writer.write(record)
  return sessions
