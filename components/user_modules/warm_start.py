"""Warm start of the retrieval Trainer from an earlier model (data in spans).

A scheduled run trains the model of the last run again over a window that
moved: same settings, more data. Its vocabularies moved with the window
(new items entered, old ones left, and Transform orders entries by
frequency, so an item's row changes even when the set does not), so every
embedding table indexed by a vocabulary is carried over entry by entry
(keras.utils.warmstart_embedding_matrix: an entry of both vocabularies keeps
its learned row, a new one its fresh initialization); every other weight
(the encoder's, the projection's, numeric buckets' tables) is carried over
as it is. TFX's Trainer hands over the base model (`base_model`); a
SavedModel's variables say nothing of vocabularies, so each retrieval model
also saves its weights, in `weights` order, with the vocabularies of its
tables (`save`).
"""
import io
import json
import os
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components.lib import layout
from components.model.dual_encoder import DualEncoder

# Stand-ins for the PAD and OOV rows (F.PAD_ID, F.OOV_ID) in a vocabulary:
# each keeps its own row. No vocabulary entry starts with a NUL byte.
RESERVED = ("\0pad", "\0oov")


def _entries(vocabulary: List[Any]) -> List[str]:
  return [e.decode("utf-8") if isinstance(e, bytes) else str(e)
          for e in vocabulary]


def save(model_dir: str, model: DualEncoder,
         vocabularies: Dict[str, List[Any]]) -> None:
  """Writes the model's weights and its tables' vocabularies (without the
  reserved rows) into the Model artifact's directory."""
  tables = model.vocabulary_tables()
  buffer = io.BytesIO()  # np.savez seeks; a GFile (gs://) does not
  np.savez(buffer, *[w.numpy() for w in model.weights])
  with tf.io.gfile.GFile(os.path.join(model_dir, layout.WARM_START_WEIGHTS),
                         "wb") as f:
    f.write(buffer.getvalue())
  with tf.io.gfile.GFile(os.path.join(model_dir, layout.WARM_START_TABLES),
                         "w") as f:
    f.write(json.dumps({
        "names": [w.name for w in model.weights],
        "tables": {str(i): name for i, name in tables.items()},
        "vocabularies": {name: _entries(vocabularies[name])
                         for name in sorted(set(tables.values()))}}))


def _mismatch(model: DualEncoder, weights: List[np.ndarray],
              tables: Dict[int, str], saved: Dict[str, Any]) -> Optional[str]:
  """Why the saved weights cannot start `model` (None: they can)."""
  if len(weights) != len(model.weights) or tables != {
      int(i): name for i, name in saved["tables"].items()}:
    return (f"its architecture differs ({len(weights)} weights, "
            f"{len(model.weights)} now)")
  for index, (old, new) in enumerate(zip(weights, model.weights)):
    shape = tuple(new.shape)
    rows = 1 if index in tables else 0  # a table's rows may differ
    if old.shape[rows:] != shape[rows:]:
      return (f"weight {new.name} is {list(old.shape)} in the base model, "
              f"{list(shape)} now")
  return None


def warm_start(model: DualEncoder, base_model_dir: str,
               vocabularies: Dict[str, List[Any]]) -> Dict[str, Any]:
  """Sets the built `model`'s weights from the model saved in
  `base_model_dir`, vocabulary tables by entry; -> what it did: per
  vocabulary the entries carried over, new and left out, or why it did
  not (the model keeps its fresh weights)."""
  result: Dict[str, Any] = {"base_model": base_model_dir}
  path = os.path.join(base_model_dir, layout.WARM_START_WEIGHTS)
  if not tf.io.gfile.exists(path):
    result["skipped"] = "the base model saved no weights to start from"
    return result
  with tf.io.gfile.GFile(path, "rb") as f:
    archive = np.load(io.BytesIO(f.read()))
  weights = [archive[f"arr_{i}"] for i in range(len(archive.files))]
  with tf.io.gfile.GFile(os.path.join(base_model_dir,
                                      layout.WARM_START_TABLES)) as f:
    saved = json.loads(f.read())
  tables = model.vocabulary_tables()
  reason = _mismatch(model, weights, tables, saved)
  if reason:
    result["skipped"] = reason
    return result
  counts = {}
  for index, (old, variable) in enumerate(zip(weights, model.weights)):
    if index not in tables:
      variable.assign(old)
      continue
    name = tables[index]
    base = list(RESERVED) + saved["vocabularies"][name]
    new = list(RESERVED) + _entries(vocabularies[name])
    variable.assign(keras.utils.warmstart_embedding_matrix(
        base, new, old,
        new_embeddings_initializer=keras.initializers.Constant(
            variable.numpy())))
    kept = len(set(base) & set(new)) - len(RESERVED)
    counts[name] = {"carried_over": kept,
                    "new": len(new) - len(RESERVED) - kept,
                    "left_out": len(base) - len(RESERVED) - kept}
  result["weights"] = len(weights)
  result["vocabularies"] = counts
  return result
