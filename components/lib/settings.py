"""The settings the TFX steps consume: each one's type, default and help text,
defined once.

A section is a dataclass (`data`, `session`, `model`, ...); `RunConfig`
(pipeline/config.py) composes them with the settings only the orchestration
uses, and `recsys run --help` and README's settings table are generated from
these definitions. A step that uses only part of a section receives a base
class of it (`VocabularyConfig` of `ModelConfig`, `SliceConfig` of
`EvalConfig`, `SeedConfig` of `TrainConfig`, `RatingModelConfig` of
`RankingConfig`), so that changing a setting it
does not read leaves its cached execution valid.

A user module declares what it receives as a `StepSettings` dataclass (one
field per section, typed by the section class, and optionally the feature
config); the DAG builds the step's part of the config from that declaration
(`RunConfig.step_settings`) and the step parses it back once, typed
(`StepSettings.parse`).

Plain Python (no TensorFlow): the command line reads these to print help.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Dict, Iterator, List, Optional, Tuple

from components.lib import feature_config as fc
from components.lib import session_data


class ConfigError(ValueError):
  """A setting that is unknown or has a bad value; the message names it."""


def setting(default: Any, help_text: str) -> Any:
  """A field with its default and its help (lists are copied per instance)."""
  if isinstance(default, list):
    return dataclasses.field(default_factory=lambda: list(default),
                             metadata={"help": help_text})
  return dataclasses.field(default=default, metadata={"help": help_text})


def _require(ok: bool, name: str, why: str) -> None:
  if not ok:
    raise ConfigError(f"{name}: {why}")


def _one_of(value: str, name: str, known) -> None:
  _require(value in known, name, f"{value!r} is not one of {', '.join(known)}")


class Section:
  """Base of the sections: `check(prefix)` raises ConfigError naming the
  setting (prefix.name) that is wrong."""

  def check(self, prefix: str) -> None:
    del prefix  # a section without constraints


# The raw MovieLens layouts (components/lib/movielens_formats.py FORMATS) and
# the encodings their files may be read in.
MOVIELENS_LAYOUTS = ("ml-1m", "ml-100k", "ml-csv")
ENCODINGS = ("latin-1", "utf-8")
# data.duplicates (components/lib/duplicates.py).
DUPLICATES_FAIL, DUPLICATES_FIRST, DUPLICATES_LAST = "fail", "first", "last"
DUPLICATES = (DUPLICATES_FAIL, DUPLICATES_FIRST, DUPLICATES_LAST)


@dataclasses.dataclass
class DataConfig(Section):
  dataset: str = setting(
      "movielens", "raw format family: movielens (1M, 100K or CSV, detected "
      "from the files in data_dir) or aliccp (raw Ali-CCP)")
  data_dir: str = setting("data/sample", "the raw data set's directory")
  max_malformed_lines: int = setting(
      0, "malformed input lines tolerated before ingestion fails (each one "
      "is reported)")
  group_bucket_bytes: int = setting(
      32 * 2**20, "joins and per-user grouping spill to disk in buckets of "
      "about this much input, keeping the DirectRunner's memory flat; 0 uses "
      "Beam's shuffle (right on a distributed runner)")
  layout: str = setting(
      "", "MovieLens layout to read when data_dir holds several: "
      + ", ".join(MOVIELENS_LAYOUTS) + " (empty: the one present)")
  encoding: str = setting(
      "", "encoding of the MovieLens files: " + ", ".join(ENCODINGS)
      + " (empty: the layout's, latin-1 for .dat and u.* files, UTF-8 for "
      "CSV; a catalog file that is valid UTF-8 with non-ASCII characters is "
      "read as UTF-8)")
  span_window: int = setting(
      0, "when data_dir holds span-NNNN directories (periods): the newest "
      "spans sessionized and trained on (0: every span ingested so far)")
  accept_drift: bool = setting(
      False, "run on although the newest span drifted from the previous one "
      "beyond the curated schema's drift bounds (DistributionValidator still "
      "reports it)")
  duplicates: str = setting(
      DUPLICATES_FAIL, "one thing on several lines of its file (a movie, a "
      "user or an Ali-CCP common-features key defined again; a movie rated "
      "again by one user; an Ali-CCP sample id again): fail (each such line "
      "is malformed), first or last in file order (keep that line; the "
      "others are counted and reported)")

  def check(self, prefix: str) -> None:
    _one_of(self.dataset, f"{prefix}.dataset", tuple(session_data.DATASETS))
    _one_of(self.layout, f"{prefix}.layout", ("",) + MOVIELENS_LAYOUTS)
    _one_of(self.encoding, f"{prefix}.encoding", ("",) + ENCODINGS)
    _one_of(self.duplicates, f"{prefix}.duplicates", DUPLICATES)
    _require(self.max_malformed_lines >= 0, f"{prefix}.max_malformed_lines",
             "must be >= 0")
    _require(self.span_window >= 0, f"{prefix}.span_window",
             "must be >= 0 (0: every span)")
    _require(self.group_bucket_bytes >= 0, f"{prefix}.group_bucket_bytes",
             "must be >= 0 (0: Beam's shuffle)")


@dataclasses.dataclass
class SessionConfig(Section):
  min_rating: Optional[float] = setting(
      None, "keep only interactions rated at least this (empty: every rating)")
  min_timeline_length: int = setting(
      3, "users with fewer interactions are dropped and counted (3 is the "
      "least that gives a train, an eval and a test interaction)")
  max_context_length: int = setting(
      50, "items of context before each label (the most recent ones); also "
      "the training sequence length and the TFLite model's input length")
  max_item_genres: int = setting(
      3, "genre slots per context item (more genres are left out, and "
      "counted)")
  train_stride: int = setting(
      0, "items between the ends of a user's consecutive train windows "
      "(max_context_length + 1 items each): a window predicts its newest "
      "train_stride items, reading the items before them as context, so "
      "every train target sees at least max_context_length + 1 - "
      "train_stride items of its history (all of it when shorter); 1 gives "
      "every target its whole history up to max_context_length; 0: half of "
      "max_context_length")
  ranker_labels_per_user: int = setting(
      10, "the newest N train interactions of each user (at most half of "
      "them) are the next-item ranker's train labels: the retrieval model "
      "that proposes the ranker's train candidates is trained without them "
      "(the retrieval model that is pushed trains on every train "
      "interaction)")

  def check(self, prefix: str) -> None:
    _require(self.ranker_labels_per_user >= 0,
             f"{prefix}.ranker_labels_per_user", "must be >= 0")
    _require(self.min_timeline_length >= 3, f"{prefix}.min_timeline_length",
             "must be >= 3 (a train, an eval and a test interaction)")
    _require(self.max_context_length >= 1, f"{prefix}.max_context_length",
             "must be >= 1")
    _require(self.max_item_genres >= 1, f"{prefix}.max_item_genres",
             "must be >= 1")
    # A window overlaps the older one by at least an item: its first own
    # item has a predecessor to be predicted from.
    _require(0 <= self.train_stride <= self.max_context_length,
             f"{prefix}.train_stride",
             "must be within [0, max_context_length] (0: half the context "
             "length)")

  def window_stride(self) -> int:
    """train_stride, with 0 resolved."""
    return self.train_stride or max(1, self.max_context_length // 2)


@dataclasses.dataclass
class VocabularyConfig(Section):
  """The vocabulary caps of the model section: what Transform reads."""
  vocabulary_top_k: int = setting(
      0, "each vocabulary (items, shops, genres, ...) keeps its N most "
      "frequent train values (0: all); the others share the OOV id, and a "
      "test target outside the item vocabulary is a miss")
  vocabulary_min_count: int = setting(
      1, "each vocabulary keeps values seen at least this often in train")

  def check(self, prefix: str) -> None:
    _require(self.vocabulary_top_k >= 0, f"{prefix}.vocabulary_top_k",
             "must be >= 0 (0 keeps every value)")
    _require(self.vocabulary_min_count >= 1, f"{prefix}.vocabulary_min_count",
             "must be >= 1")


_POSITIVE_MODEL_SETTINGS = (
    "cnn_filters", "cnn_kernel_size", "cnn_layers", "rnn_units", "rnn_layers",
    "attention_units", "attention_layers", "attention_heads")


@dataclasses.dataclass
class ModelConfig(VocabularyConfig):
  encoder: str = setting(
      "attention", "context encoder of the sequence group: "
      + ", ".join(fc.SEQUENCE_ENCODERS))
  features: Any = setting(
      "", "feature groups: a shipped config (movielens_features, "
      "movielens_ids, aliccp_features in pipeline/features/), a YAML file, or "
      "the config itself as a mapping; empty: the data set's own")
  dropout: float = setting(
      0.1, "dropout of the context encoder (ML-1M subset: README)")
  item_embedding_dim: int = setting(
      0, "width of the item embeddings (the label's and the context items'; "
      "0: as the feature config says)")
  share_item_embeddings: bool = setting(
      True, "the context's item ids use the label's embedding table when "
      "vocabulary and width match")
  cnn_filters: int = setting(64, "cnn: filters per block")
  cnn_kernel_size: int = setting(3, "cnn: kernel width")
  cnn_layers: int = setting(3, "cnn: causal Conv1D blocks")
  cnn_dilated: bool = setting(True, "cnn: dilation doubling per block")
  rnn_units: int = setting(64, "lstm, gru: units per layer")
  rnn_layers: int = setting(1, "lstm, gru: stacked layers")
  attention_units: int = setting(64, "attention: width of the blocks")
  attention_layers: int = setting(2, "attention: Transformer blocks")
  attention_heads: int = setting(
      1, "attention: heads (attention_units must be a multiple)")
  context_window: int = setting(
      0, "attention, bow: the most recent items before each position the "
      "encoder reads (0: the whole context, up to "
      "session.max_context_length); what the Tuner's context length sets")

  def check(self, prefix: str) -> None:
    super().check(prefix)
    _one_of(self.encoder, f"{prefix}.encoder", fc.SEQUENCE_ENCODERS)
    _require(0.0 <= self.dropout < 1.0, f"{prefix}.dropout",
             "must be within [0, 1)")
    for name in _POSITIVE_MODEL_SETTINGS:
      _require(getattr(self, name) >= 1, f"{prefix}.{name}", "must be >= 1")
    _require(self.attention_units % self.attention_heads == 0,
             f"{prefix}.attention_units",
             "must be a multiple of attention_heads")
    _require(self.context_window >= 0, f"{prefix}.context_window",
             "must be >= 0 (0: the whole context)")
    _require(self.item_embedding_dim >= 0, f"{prefix}.item_embedding_dim",
             "must be >= 0 (0: the feature config's)")


@dataclasses.dataclass
class SeedConfig(Section):
  """The seed of the train section: what the rating model's Trainer reads."""
  seed: int = setting(42, "seed of both trainers (weights, shuffling)")


@dataclasses.dataclass
class TrainConfig(SeedConfig):
  epochs: int = setting(
      100, "upper bound on epochs; training usually stops earlier "
      "(patience, max_minutes)")
  batch_size: int = setting(64, "training sequences (examples) per batch")
  learning_rate: float = setting(
      0.002, "Adam's learning rate (the encoders get further within "
      "train.max_minutes than at 0.001: README, make bench)")
  learning_rate_decay: float = setting(
      0.97, "the learning rate is multiplied by this after every epoch (1: "
      "constant; ML-1M subset, 20 minutes: README)")
  loss: str = setting(
      "softmax", "softmax (full, exact) or sampled_softmax (logQ-corrected, "
      "for large catalogs)")
  num_negatives: int = setting(1024, "negatives per batch for sampled_softmax")
  exclude_seen: bool = setting(
      True, "each train prediction's softmax leaves out the items up to it "
      "in its window (not its target), as rankings leave out the history "
      "(ML-1M subset: README)")
  patience: int = setting(
      5, "epochs without a better eval-split NDCG@10 before stopping (the "
      "best epoch is kept)")
  max_minutes: float = setting(
      20.0, "wall-time budget for training, checked after each epoch")
  warm_start: bool = setting(
      True, "data in spans: the retrieval Trainer starts from the latest "
      "blessed model trained on earlier spans (item embeddings carried over "
      "by item id, new items fresh, the encoder's weights as they are); "
      "false: from scratch")
  warm_start_epochs: int = setting(
      12, "upper bound on epochs when the Trainer warm-starts (ML-1M "
      "replay: README, Continuous training)")

  def check(self, prefix: str) -> None:
    for name in ("epochs", "batch_size", "num_negatives", "patience",
                 "warm_start_epochs"):
      _require(getattr(self, name) >= 1, f"{prefix}.{name}", "must be >= 1")
    _require(self.learning_rate > 0, f"{prefix}.learning_rate", "must be > 0")
    _require(0 < self.learning_rate_decay <= 1, f"{prefix}.learning_rate_decay",
             "must be within (0, 1]")
    _one_of(self.loss, f"{prefix}.loss", ("softmax", "sampled_softmax"))
    _require(self.max_minutes > 0, f"{prefix}.max_minutes", "must be > 0")


@dataclasses.dataclass
class TunerConfig(Section):
  enabled: bool = setting(
      False, "a TFX Tuner searches the retrieval model's learning rate, "
      "dropout, item embedding width, encoder depth and context length on "
      "the eval split before the Trainer, which trains with the best "
      "(KerasTuner random search; the first trial is the settings as given)")
  trials: int = setting(8, "tuner: trials at most")
  max_minutes: float = setting(
      60.0, "tuner: wall-time budget of the search; each trial trains at "
      "most max_minutes / trials")

  def check(self, prefix: str) -> None:
    _require(self.trials >= 1, f"{prefix}.trials", "must be >= 1")
    _require(self.max_minutes > 0, f"{prefix}.max_minutes", "must be > 0")

  @property
  def trial_minutes(self) -> float:
    return self.max_minutes / self.trials


@dataclasses.dataclass
class SliceConfig(Section):
  """The slice settings of the eval section: what Sessionize writes the
  slice features with (components/lib/slices.py)."""
  history_length_edges: List[int] = setting(
      [10, 20, 50, 100, 200], "edges of the history-length slices")
  popularity_shares: List[float] = setting(
      [0.5, 0.8], "shares of the train interactions where the head and the "
      "torso slices of target items end (by train frequency)")

  def check(self, prefix: str) -> None:
    edges = list(self.history_length_edges)
    _require(bool(edges) and edges == sorted(set(edges)) and edges[0] >= 1,
             f"{prefix}.history_length_edges",
             f"must be increasing and >= 1, got {edges}")
    shares = list(self.popularity_shares)
    _require(len(shares) == 2 and 0.0 < shares[0] < shares[1] <= 1.0,
             f"{prefix}.popularity_shares",
             f"must be two shares 0 < head < torso <= 1, got {shares}")


@dataclasses.dataclass
class EvalConfig(SliceConfig):
  min_hit_rate_at_10: float = setting(
      0.05, "blessing: the model's test HR@10 must reach this")
  max_hit_rate_drop: float = setting(
      0.01, "blessing: largest HR@10 drop against the latest blessed model "
      "of this pipeline (negative: it must beat it by that much); the first "
      "run has no baseline")

  def check(self, prefix: str) -> None:
    super().check(prefix)
    _require(0.0 <= self.min_hit_rate_at_10 <= 1.0,
             f"{prefix}.min_hit_rate_at_10", "must be within [0, 1]")
    _require(-1.0 <= self.max_hit_rate_drop <= 1.0,
             f"{prefix}.max_hit_rate_drop", "must be within [-1, 1]")


def _check_dense_training(section: Section, prefix: str) -> None:
  """The checks of a dense model's section (the rating model's, the
  ranker's): its layers, dropout, learning rate and time budget."""
  _require(bool(section.hidden_units) and min(section.hidden_units) >= 1,
           f"{prefix}.hidden_units", "must be a non-empty list of sizes >= 1")
  _require(0.0 <= section.dropout < 1.0, f"{prefix}.dropout",
           "must be within [0, 1)")
  _require(section.learning_rate > 0, f"{prefix}.learning_rate",
           "must be > 0")
  _require(section.max_minutes > 0, f"{prefix}.max_minutes", "must be > 0")


@dataclasses.dataclass
class RatingModelConfig(Section):
  """The rating model's settings of the ranking section: what its Trainer
  reads."""
  embedding_dim: int = setting(32, "rating model: embedding width")
  hidden_units: List[int] = setting([64, 32], "rating model: dense layers")
  # 0.3: on the ML-1M subset's eval split RMSE 0.9169 against 0.9178 at 0.1.
  dropout: float = setting(0.3, "rating model: dropout")
  epochs: int = setting(30, "rating model: upper bound on epochs")
  batch_size: int = setting(64, "rating model: examples per batch")
  learning_rate: float = setting(0.001, "rating model: Adam's learning rate")
  patience: int = setting(
      3, "rating model: epochs without a lower eval RMSE before stopping")
  max_minutes: float = setting(10.0, "rating model: wall-time budget")

  def check(self, prefix: str) -> None:
    for name in ("embedding_dim", "epochs", "batch_size", "patience"):
      _require(getattr(self, name) >= 1, f"{prefix}.{name}", "must be >= 1")
    _check_dense_training(self, prefix)


@dataclasses.dataclass
class RankingConfig(RatingModelConfig):
  enabled: bool = setting(
      True, "the ranking stage: a rating model trained, evaluated and "
      "pushed beside retrieval, and the two-stage evaluation (rated data "
      "only)")
  min_rmse_gain: float = setting(
      0.0, "blessing: test RMSE at least this far below the per-item-mean "
      "baseline's (0: beat it)")
  max_rmse_increase: float = setting(
      0.01, "blessing: largest RMSE rise against the latest blessed rating "
      "model")
  two_stage_candidates: List[int] = setting(
      [10, 20, 50, 100], "retrieval top-N sizes the two-stage evaluation "
      "re-orders by predicted rating")

  def check(self, prefix: str) -> None:
    super().check(prefix)
    _require(self.max_rmse_increase >= 0, f"{prefix}.max_rmse_increase",
             "must be >= 0")
    _require(bool(self.two_stage_candidates) and
             min(self.two_stage_candidates) >= 1,
             f"{prefix}.two_stage_candidates", "must be counts >= 1")


@dataclasses.dataclass
class RankerModelConfig(Section):
  """The ranker's settings of the ranker section: what its Trainer reads
  (components/model/next_item_ranker.py)."""
  candidates: int = setting(
      100, "retrieval's top N that the ranker re-orders (a label outside "
      "them keeps its retrieval rank)")
  successors: int = setting(
      15, "likeliest next items kept per item, with the probability that "
      "each follows it in the train histories: the table the ranker file "
      "holds (the largest part of it; an entry is an id, int16 up to "
      "32,767 items, and a probability: 4 bytes in a float16 file, 6 in an "
      "unquantized one)")
  successor_window: int = setting(
      3, "an item up to this many steps after another counts as following "
      "it (weighted 1 / steps)")
  recent_windows: List[int] = setting(
      [1, 5, 20], "the newest context items over which the probability that "
      "a candidate follows each is summed and maxed, one feature pair per "
      "window")
  hidden_units: List[int] = setting([64, 32], "ranker: dense layers")
  dropout: float = setting(0.0, "ranker: dropout")
  epochs: int = setting(10, "ranker: upper bound on epochs")
  batch_size: int = setting(128, "ranker: candidate lists per batch")
  learning_rate: float = setting(0.001, "ranker: Adam's learning rate")
  patience: int = setting(
      2, "ranker: epochs without a better eval-split NDCG@10 before "
      "stopping (the best epoch is kept)")
  max_minutes: float = setting(10.0, "ranker: wall-time budget")
  quantization: str = setting(
      "float16", "weights of the ranker's model.tflite: none, float16 or "
      "dynamic (full int8 would need representative lists)")

  def check(self, prefix: str) -> None:
    _one_of(self.quantization, f"{prefix}.quantization",
            ("none", "float16", "dynamic"))
    for name in ("candidates", "successors", "successor_window", "epochs",
                 "batch_size", "patience"):
      _require(getattr(self, name) >= 1, f"{prefix}.{name}", "must be >= 1")
    _require(bool(self.recent_windows) and min(self.recent_windows) >= 1,
             f"{prefix}.recent_windows", "must be a non-empty list of "
             "counts >= 1")
    _check_dense_training(self, prefix)


@dataclasses.dataclass
class RankerConfig(RankerModelConfig):
  enabled: bool = setting(
      True, "the next-item ranker: a retrieval model trained without the "
      "ranker's labels proposes its train candidates, the ranker is trained "
      "on them, the chain evaluated against retrieval alone and the ranker "
      "pushed to <serving_dir>/ranker/ beside the retrieval version it "
      "follows")
  min_ndcg_gain: float = setting(
      0.0, "blessing: the chain's test NDCG@10 at least this far above "
      "retrieval alone's")


QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


@dataclasses.dataclass
class ServingModelConfig(Section):
  """The serving settings a Trainer reads (what its export holds); the
  push bound is the Pushers' alone, so changing it re-trains nothing."""
  top_k: int = setting(
      100, "recommendations the serving signature and the TFLite model "
      "return (and the candidates the rating model rates)")
  quantization: str = setting(
      "float16", "weights of the retrieval model's model.tflite: none "
      "(float32), float16 (half the bytes; bucket boundaries stay exact), "
      "dynamic (int8 weights, float activations), int8 (full integer, "
      "calibrated on train examples); the file is evaluated either way")

  def check(self, prefix: str) -> None:
    _require(self.top_k >= 1, f"{prefix}.top_k", "must be >= 1")
    _one_of(self.quantization, f"{prefix}.quantization", QUANTIZATIONS)


@dataclasses.dataclass
class ServingConfig(ServingModelConfig):
  max_tflite_drop: float = setting(
      0.005, "model.tflite is pushed only if its test HR@10 (through the "
      "TFLite interpreter; a ranker's chained after retrieval's file) is at "
      "most this far below the SavedModel's (TFMA)")

  def check(self, prefix: str) -> None:
    super().check(prefix)
    _require(self.max_tflite_drop >= 0, f"{prefix}.max_tflite_drop",
             "must be >= 0")


# --- Listing the settings (help, README) --------------------------------------

def declared_fields(cls) -> List[dataclasses.Field]:
  """A dataclass's fields, its own first, then those of its bases."""
  own = set(cls.__dict__.get("__annotations__", {}))
  fields = dataclasses.fields(cls)
  return ([f for f in fields if f.name in own] +
          [f for f in fields if f.name not in own])


def describe(obj, prefix: str = "") -> Iterator[Tuple[str, Any, str]]:
  """(dotted name, default, help) of every setting of a config dataclass
  instance, nested sections included, in declaration order."""
  for field in declared_fields(type(obj)):
    value = getattr(obj, field.name)
    name = f"{prefix}{field.name}"
    if dataclasses.is_dataclass(value):
      yield from describe(value, f"{name}.")
    elif "help" in field.metadata:  # else a record of the run, not a setting
      yield name, value, field.metadata["help"]


def format_value(value: Any) -> str:
  """A default as it is written with --set."""
  if value is None or value == "":
    return "(empty)"
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, list):
    return ",".join(str(v) for v in value)
  return str(value)


# --- What one step receives ---------------------------------------------------

def part(section: Section, cls) -> Dict[str, Any]:
  """The values of `cls`'s fields (cls is the section's class or a base)."""
  return {f.name: getattr(section, f.name) for f in dataclasses.fields(cls)}


@dataclasses.dataclass(frozen=True)
class StepSettings:
  """Base of a step's typed settings: subclasses declare one field per
  section they read, named as the section and typed by its class (or a base
  class of it, for part of the section), and `features: fc.FeatureConfig`
  if they read the feature config. `RunConfig.step_settings` builds the
  step's part from this declaration; `parse` reads its JSON form back."""

  @classmethod
  def parse(cls, values: Dict[str, Any]):
    """The typed settings from their JSON form (a custom_config)."""
    hints = typing.get_type_hints(cls)
    typed = {}
    for field in dataclasses.fields(cls):
      raw, kind = values[field.name], hints[field.name]
      typed[field.name] = fc.parse(raw) if kind is fc.FeatureConfig else kind(
          **raw)
    return cls(**typed)

  @classmethod
  def from_json(cls, text: str):
    return cls.parse(json.loads(text))

  def to_dict(self) -> Dict[str, Any]:
    """The JSON form `parse` reads."""
    out = {}
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      out[field.name] = (value.to_dict() if isinstance(value, fc.FeatureConfig)
                         else dataclasses.asdict(value))
    return out

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), sort_keys=True)
