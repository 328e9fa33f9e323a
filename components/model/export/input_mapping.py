"""How a raw query becomes the on-device model's inputs, and its outputs item
ids again: the bundle's input_mapping.json, and its reader.

The on-device signature (model.tflite) takes vocabulary indices as int32 at a
static batch of one, as the TFLite on-device reference's model does: no
string tensors, so no dynamic ones, and TFLite's XNNPACK delegate takes the
graph (a string hash table inside makes every tensor after it dynamic, and
XNNPACK refuses such a graph whole). The app maps raw values to indices with
this file, as `InputMapping.inputs` does:

* a vocabulary input (item ids, genres, gender, ...): PADDING for '' , the
  value's position in `vocabularies[name]` plus FIRST_INDEX, UNKNOWN for a
  value not in it;
* a bucketed number (rating, year, age): UNKNOWN for a missing value (<= 0),
  else FIRST_INDEX plus how many `boundaries` are <= the value (float32);
* a sequence input holds `context_length` positions, oldest first, padded at
  the end with PADDING (every input of a padding position is PADDING); a
  position has `slots` values (genre slots), padded with PADDING;
* the outputs `top_item_indices` index the item vocabulary the same way;
  they may include the context's own items, PADDING and UNKNOWN, which the
  caller drops, keeping the first `top_k`;
* a history with no items at all gets the most popular items, by
  `popularity` (each vocabulary item's share of the train interactions),
  without calling the model.

Only numpy here: it is the app's side (the command line, the benchmarks and
the TFLite evaluation use it), written by the export (retrieval.py).
"""
import dataclasses
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from components.lib import features as F

PADDING = F.PAD_ID
UNKNOWN = F.OOV_ID
FIRST_INDEX = F.NUM_RESERVED_IDS
SEQUENCE = "sequence"
STATIC = "static"


@dataclasses.dataclass(frozen=True)
class Input:
  """One input of the on-device signature: [1, width] int32 indices."""
  name: str
  kind: str  # SEQUENCE (per context position) or STATIC (the user's)
  slots: int  # values per position (sequence) or in all (static)
  vocabulary: str = ""
  boundaries: Tuple[float, ...] = ()


class InputMapping:
  """Raw values <-> the on-device model's indices (see the module)."""

  def __init__(self, inputs: Sequence[Input], vocabularies: Dict[str, List[str]],
               item_vocabulary: str, context_length: int, top_k: int,
               popularity: Sequence[float]):
    self.inputs = {i.name: i for i in inputs}
    self.vocabularies = vocabularies
    self.item_vocabulary = item_vocabulary
    self.context_length = context_length
    self.top_k = top_k
    self.popularity = np.asarray(popularity, np.float32)
    if len(self.popularity) != len(vocabularies[item_vocabulary]):
      raise ValueError(f"{len(self.popularity)} popularity shares for "
                       f"{len(vocabularies[item_vocabulary])} items")
    self._index = {name: {value: i + FIRST_INDEX
                          for i, value in enumerate(values)}
                   for name, values in vocabularies.items()}
    self._boundaries = {i.name: np.array(i.boundaries, np.float32)
                        for i in inputs if not i.vocabulary}

  # --- The file ---------------------------------------------------------------

  def to_dict(self) -> Dict[str, Any]:
    return {
        "padding": PADDING, "unknown": UNKNOWN, "first_index": FIRST_INDEX,
        "context_length": self.context_length, "top_k": self.top_k,
        "item_vocabulary": self.item_vocabulary,
        "inputs": [{k: v for k, v in dataclasses.asdict(i).items()
                    if v not in ("", ())} for i in self.inputs.values()],
        "vocabularies": self.vocabularies,
        "popularity": [float(p) for p in self.popularity],
    }

  @classmethod
  def from_dict(cls, raw: Dict[str, Any]) -> "InputMapping":
    if (raw["padding"], raw["unknown"], raw["first_index"]) != (
        PADDING, UNKNOWN, FIRST_INDEX):
      raise ValueError("input mapping of another index layout: "
                       f"{raw['padding']}, {raw['unknown']}, "
                       f"{raw['first_index']}")
    inputs = [Input(name=i["name"], kind=i["kind"], slots=int(i["slots"]),
                    vocabulary=i.get("vocabulary", ""),
                    boundaries=tuple(i.get("boundaries", ())))
              for i in raw["inputs"]]
    return cls(inputs, raw["vocabularies"], raw["item_vocabulary"],
               int(raw["context_length"]), int(raw["top_k"]),
               raw["popularity"])

  def save(self, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
      json.dump(self.to_dict(), f, separators=(",", ":"))

  @classmethod
  def load(cls, path: str) -> "InputMapping":
    with open(path, encoding="utf-8") as f:
      return cls.from_dict(json.load(f))

  # --- Mapping ------------------------------------------------------------------

  def width(self, name: str) -> int:
    spec = self.inputs[name]
    return spec.slots * (self.context_length if spec.kind == SEQUENCE else 1)

  def index(self, name: str, value) -> int:
    """The index of one raw value of input `name`. A missing value (None or
    '') is PADDING for a vocabulary input and UNKNOWN for a number, as the
    SavedModel maps '' and 0."""
    spec = self.inputs[name]
    if spec.vocabulary:
      return self._vocabulary_indices(spec.vocabulary, [value])[0]
    return int(self._bucket_indices(name, [value])[0])

  def _vocabulary_indices(self, vocabulary: str, values: Sequence) -> List[int]:
    table = self._index[vocabulary]
    return [PADDING if v is None or v == "" or v == b"" else table.get(
        v if type(v) is str else  # pylint: disable=unidiomatic-typecheck
        v.decode("utf-8") if isinstance(v, bytes) else str(v), UNKNOWN)
            for v in values]

  def _bucket_indices(self, name: str, values: Sequence) -> np.ndarray:
    numbers = np.array([0.0 if v is None or v == "" else v for v in values],
                       np.float32)
    buckets = FIRST_INDEX + np.searchsorted(self._boundaries[name], numbers,
                                            side="right")
    # Not positive (missing) or NaN: UNKNOWN.
    return np.where(numbers > 0, buckets, UNKNOWN)

  def item_indices(self, item_ids: Sequence) -> List[int]:
    return self._vocabulary_indices(self.item_vocabulary, item_ids)

  def item_id(self, index: int) -> str:
    return self.vocabularies[self.item_vocabulary][index - FIRST_INDEX]

  def empty_inputs(self) -> Dict[str, np.ndarray]:
    """{input name: [1, width] int32}, all PADDING: buffers for `fill`."""
    return {name: np.zeros([1, self.width(name)], np.int32)
            for name in self.inputs}

  def inputs_of(self, item_ids: Sequence,
                features: Optional[Dict[str, Sequence]] = None,
                user: Optional[Dict[str, Any]] = None
                ) -> Dict[str, np.ndarray]:
    """{input name: [1, width] int32} of a query (see `fill`)."""
    arrays = self.empty_inputs()
    self.fill(arrays, item_ids, features, user)
    return arrays

  def fill(self, arrays: Dict[str, np.ndarray], item_ids: Sequence,
           features: Optional[Dict[str, Sequence]] = None,
           user: Optional[Dict[str, Any]] = None) -> List[int]:
    """Writes a query into `arrays` (from `empty_inputs`): a history (oldest
    first; the most recent context_length items are kept), its position
    `features` (a value, or a list of values for a slotted input, per item)
    and `user` features (those the model does not take are ignored: an app
    may hold more of the user's profile); what is not given is missing (see
    `index`). Returns the context's item indices."""
    features = features or {}
    user = user or {}
    n = len(item_ids)
    for name, values in features.items():
      if name not in self.inputs or self.inputs[name].kind != SEQUENCE:
        raise ValueError(f"{name} is not a position input of the model "
                         f"({', '.join(self._names(SEQUENCE))})")
      if len(values) != n:
        raise ValueError(f"{name} must align with item_ids ({n} items)")
    start = max(0, n - self.context_length)
    kept = n - start
    context = self.item_indices(list(item_ids)[start:])
    for name, spec in self.inputs.items():
      values = arrays[name][0]
      values[:] = PADDING
      if name == F.CONTEXT_ITEM_ID:
        values[:kept] = context
      elif spec.kind == SEQUENCE:
        given = features.get(name)
        if given is None:  # missing at every position of the context
          if not spec.vocabulary:  # (a missing string is PADDING already)
            values[:kept * spec.slots:spec.slots] = UNKNOWN
        elif spec.slots == 1:
          values[:kept] = self._indices(name, [
              (v[0] if v else None) if isinstance(v, (list, tuple)) else v
              for v in list(given)[start:]])
        else:
          at, flat = [], []
          for position, value in enumerate(list(given)[start:]):
            slot_values = (value if isinstance(value, (list, tuple))
                           else [value])[:spec.slots]
            at += range(position * spec.slots,
                        position * spec.slots + len(slot_values))
            flat += slot_values
          values[at] = self._indices(name, flat)
      else:
        values[:] = self._indices(name, [user.get(name)])[0]
    return context

  def _indices(self, name: str, values: Sequence):
    vocabulary = self.inputs[name].vocabulary
    return (self._vocabulary_indices(vocabulary, values) if vocabulary
            else self._bucket_indices(name, values))

  def recommendations(self, context: Sequence[int], indices: np.ndarray,
                      scores: np.ndarray) -> Tuple[List[str], np.ndarray]:
    """The model's top indices and scores -> the first top_k item ids and
    scores, the context's own items (`context`: its input indices), PADDING
    and UNKNOWN dropped."""
    seen = set(context)
    top = indices.tolist()
    keep = [k for k, i in enumerate(top)
            if i >= FIRST_INDEX and i not in seen][:self.top_k]
    ids = self.vocabularies[self.item_vocabulary]
    return [ids[top[k] - FIRST_INDEX] for k in keep], scores[keep]

  def most_popular(self) -> Tuple[List[str], np.ndarray]:
    """What a history with no items gets: the top_k item ids and their
    shares, most popular first."""
    top = np.argsort(-self.popularity, kind="stable")[:self.top_k]
    ids = self.vocabularies[self.item_vocabulary]
    return [ids[i] for i in top], self.popularity[top]

  def popularity_scores(self) -> np.ndarray:
    """The shares as scores of every index (PADDING and UNKNOWN: 0), as the
    model's `scores` are laid out."""
    return np.concatenate([np.zeros(FIRST_INDEX, np.float32),
                           self.popularity])

  def _names(self, kind: str) -> List[str]:
    return sorted(n for n, i in self.inputs.items() if i.kind == kind)
