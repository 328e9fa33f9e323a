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
  they include the context's own items, which the caller drops, keeping the
  first `top_k`.

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
               item_vocabulary: str, context_length: int, top_k: int):
    self.inputs = {i.name: i for i in inputs}
    self.vocabularies = vocabularies
    self.item_vocabulary = item_vocabulary
    self.context_length = context_length
    self.top_k = top_k
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
               int(raw["context_length"]), int(raw["top_k"]))

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
    missing = value is None or (isinstance(value, (str, bytes)) and not value)
    if spec.vocabulary:
      if missing:
        return PADDING
      if isinstance(value, bytes):
        value = value.decode("utf-8")
      return self._index[spec.vocabulary].get(str(value), UNKNOWN)
    number = np.float32(0 if missing else value)
    if not number > 0:  # missing, not positive, or NaN
      return UNKNOWN
    return FIRST_INDEX + int(np.searchsorted(self._boundaries[name], number,
                                             side="right"))

  def item_indices(self, item_ids: Sequence) -> List[int]:
    return [self.index(F.CONTEXT_ITEM_ID, i) for i in item_ids]

  def item_id(self, index: int) -> str:
    return self.vocabularies[self.item_vocabulary][index - FIRST_INDEX]

  def inputs_of(self, item_ids: Sequence,
                features: Optional[Dict[str, Sequence]] = None,
                user: Optional[Dict[str, Any]] = None
                ) -> Dict[str, np.ndarray]:
    """{input name: [1, width] int32} of a history (oldest first; the most
    recent context_length items are kept), its position `features` (a value,
    or a list of values for a slotted input, per item) and `user` features;
    what is not given is missing (see `index`)."""
    features = features or {}
    n = len(item_ids)
    for name, values in features.items():
      if name not in self.inputs or self.inputs[name].kind != SEQUENCE:
        raise ValueError(f"{name} is not a position input of the model "
                         f"({', '.join(self._names(SEQUENCE))})")
      if len(values) != n:
        raise ValueError(f"{name} must align with item_ids ({n} items)")
    for name in user or {}:
      if name not in self.inputs or self.inputs[name].kind != STATIC:
        raise ValueError(f"{name} is not a user input of the model "
                         f"({', '.join(self._names(STATIC))})")
    recent = slice(max(0, n - self.context_length), n)
    kept = list(item_ids)[recent]
    arrays = {}
    for name, spec in self.inputs.items():
      values = np.full([1, self.width(name)], PADDING, np.int32)
      if name == F.CONTEXT_ITEM_ID:
        values[0, :len(kept)] = self.item_indices(kept)
      elif spec.kind == SEQUENCE:
        given = list(features.get(name, [None] * n))[recent]
        for position, value in enumerate(given):
          slot_values = (list(value) if isinstance(value, (list, tuple))
                         else [value])
          for slot, v in enumerate(slot_values[:spec.slots]):
            values[0, position * spec.slots + slot] = self.index(name, v)
      else:
        values[0, :] = self.index(name, (user or {}).get(name))
      arrays[name] = values
    return arrays

  def recommendations(self, context: Sequence[int], indices: np.ndarray,
                      scores: np.ndarray) -> Tuple[List[str], np.ndarray]:
    """The model's top indices and scores -> the first top_k item ids and
    scores, the context's own items (`context`: its input indices) dropped."""
    seen = set(int(i) for i in context)
    keep = [k for k, i in enumerate(indices) if int(i) not in seen]
    keep = keep[:self.top_k]
    return [self.item_id(int(indices[k])) for k in keep], scores[keep]

  def _names(self, kind: str) -> List[str]:
    return sorted(n for n, i in self.inputs.items() if i.kind == kind)
