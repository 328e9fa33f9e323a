"""One config object that records every knob of a run.

`RunConfig` is built from defaults, an optional YAML/JSON file (`--config`) and
`--set section.key=value` overrides, validated before the pipeline starts, and
written in full into the run's output directory (`run_config.json`). Each
component receives only the sections it depends on, so that changing, say, the
number of epochs re-runs training but reuses the cached ingestion.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import typing
from typing import Any, Dict, List, Optional

import yaml

from components import feature_config as fc
from components import session_data
from components import slices

DATASETS = tuple(session_data.DATASETS)
RUNNERS = ("local", "beam")
METADATA_BACKENDS = ("sqlite", "mysql")
# model.features when it is left empty: the data set's own feature groups.
DEFAULT_FEATURES = {"movielens": "movielens_features",
                    "aliccp": "aliccp_features"}
RANKING_DIR = "ranking"
FEATURES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "features")


class ConfigError(ValueError):
  """A config file or override that names an unknown key or a bad value."""


@dataclasses.dataclass
class DataConfig:
  # Which raw format family to ingest: movielens (the exact variant, 1M, 100K
  # or CSV, is detected from the files in data_dir) or aliccp (raw Ali-CCP).
  dataset: str = "movielens"
  data_dir: str = "data/sample"
  # Malformed lines tolerated before ingestion fails (each one is reported).
  max_malformed_lines: int = 0
  # Joins of large inputs (Ali-CCP's two files) spill to disk in buckets of
  # about this many bytes of input, so the DirectRunner's memory stays flat
  # (components/disk_group.py); 0 uses Beam's CoGroupByKey, right for a
  # distributed runner whose shuffle spills to disk itself.
  group_bucket_bytes: int = 32 * 2**20


@dataclasses.dataclass
class SessionConfig:
  # Keep only interactions rated at least this (None keeps every rating).
  min_rating: Optional[float] = None
  # Users with fewer interactions are dropped (and counted); the protocol's 3
  # is the least that gives a train, an eval and a test interaction.
  min_timeline_length: int = 3
  # Items of context before each label (the most recent ones); also the
  # TFLite model's input length and the length of training sequences.
  max_context_length: int = 50
  # Genre slots per context item (more genres are left out, and counted).
  max_item_genres: int = 3


@dataclasses.dataclass
class ModelConfig:
  # Context encoder of the feature config's sequence group.
  encoder: str = "attention"
  # Feature groups: a shipped config (pipeline/features/NAME.yaml), a YAML
  # file, or the config itself as a mapping (what run_config.json records);
  # empty: the data set's default (movielens_features, aliccp_features).
  features: Any = ""
  dropout: float = 0.2
  # The context's item ids use the label's embedding table when vocabulary
  # and width match.
  share_item_embeddings: bool = True
  cnn_filters: int = 64
  cnn_kernel_size: int = 3
  cnn_layers: int = 3
  cnn_dilated: bool = True
  rnn_units: int = 64
  rnn_layers: int = 1
  attention_units: int = 64
  attention_layers: int = 2
  attention_heads: int = 1
  # Vocabulary caps (the on-device model grows with its tables): each
  # vocabulary (items, shops, genres, ...) keeps its `vocabulary_top_k` most
  # frequent train values (0: all) seen at least `vocabulary_min_count`
  # times; the others are out of vocabulary (one shared OOV id), and a test
  # target outside the item vocabulary counts as a miss.
  vocabulary_top_k: int = 0
  vocabulary_min_count: int = 1


@dataclasses.dataclass
class TrainConfig:
  # Upper bound; training usually stops earlier (patience, max_minutes).
  epochs: int = 100
  # Training sequences (examples) per batch.
  batch_size: int = 64
  learning_rate: float = 0.001
  # softmax (full, exact) or sampled_softmax (logQ-corrected, large catalogs).
  loss: str = "softmax"
  num_negatives: int = 1024
  # Epochs without a better eval-split NDCG@10 before stopping.
  patience: int = 5
  # Wall-time budget for fitting, checked after each epoch.
  max_minutes: float = 20.0
  seed: int = 42


@dataclasses.dataclass
class EvalConfig:
  # Blessing threshold: the model's HR@10 on the test split must reach this.
  min_hit_rate_at_10: float = 0.05
  # Change threshold against the latest blessed model of this pipeline
  # (resolved from MLMD): a candidate whose test HR@10 is more than this
  # below the baseline's is not blessed (negative: it must beat the baseline
  # by that much). The first run has no baseline, so only the bound above.
  max_hit_rate_drop: float = 0.01
  # Slices (components/slices.py): edges of the history-length buckets, and
  # the shares of train interactions where the head and the torso of the
  # items end (by train frequency).
  history_length_edges: List[int] = dataclasses.field(
      default_factory=lambda: [10, 20, 50, 100, 200])
  popularity_shares: List[float] = dataclasses.field(
      default_factory=lambda: [0.5, 0.8])

  def slice_params(self) -> slices.SliceParams:
    return slices.SliceParams(tuple(self.history_length_edges),
                              tuple(self.popularity_shares))


@dataclasses.dataclass
class RankingConfig:
  # The ranking stage: a rating model (components/model/rating_model.py)
  # trained, evaluated and pushed beside the retrieval model, and the
  # two-stage evaluation (retrieval top-N re-ordered by predicted rating).
  # Data sets without ratings (Ali-CCP's clicks) have no ranking stage.
  enabled: bool = True
  embedding_dim: int = 32
  hidden_units: List[int] = dataclasses.field(default_factory=lambda: [64, 32])
  # 0.3: on the ML-1M subset's eval split RMSE 0.9169 against 0.9178 at 0.1.
  dropout: float = 0.3
  epochs: int = 30
  batch_size: int = 64
  learning_rate: float = 0.001
  # Epochs without a lower eval-split RMSE before stopping.
  patience: int = 3
  max_minutes: float = 10.0
  # Blessing: the test RMSE must be at least this much below the
  # per-item-mean baseline's (0: beat it), and at most `max_rmse_increase`
  # above the latest blessed rating model's.
  min_rmse_gain: float = 0.0
  max_rmse_increase: float = 0.01
  # Retrieval candidates the two-stage evaluation re-orders (each N is
  # evaluated); `recsys recommend --two-stage` re-orders serving.top_k.
  two_stage_candidates: List[int] = dataclasses.field(
      default_factory=lambda: [10, 20, 50, 100])


@dataclasses.dataclass
class ServingConfig:
  # Recommendations returned by the serving signature and the TFLite model.
  top_k: int = 100


@dataclasses.dataclass
class MetadataConfig:
  # Where the ML Metadata (lineage, cache) store lives: sqlite, a file in the
  # output directory; or mysql, a database shared by several machines. Each
  # mysql_* setting left empty is taken from the environment variable
  # RECSYS_MYSQL_HOST, _PORT, _DATABASE or _USER; the password only ever from
  # RECSYS_MYSQL_PASSWORD, so that it is never recorded with the run.
  # (Kubeflow Pipelines keeps its own store; a compiled pipeline ignores this.)
  backend: str = "sqlite"
  mysql_host: str = ""
  mysql_port: int = 0
  mysql_database: str = ""
  mysql_user: str = ""


@dataclasses.dataclass
class RunConfig:
  name: str = "recsys"
  output_dir: str = "output/sample"
  # Pushed models land in <push_dir>/<version>/; empty means
  # <output_dir>/serving.
  push_dir: str = ""
  # Orchestrator: local (TFX's LocalDagRunner, components one after another in
  # this process) or beam (BeamDagRunner: the DAG itself is a Beam pipeline).
  # Kubeflow Pipelines runs a compiled pipeline instead (`recsys compile`).
  runner: str = "local"
  # Arguments for every component's Beam job (DirectRunner, Flink, Spark or
  # Dataflow flags).
  beam_args: List[str] = dataclasses.field(
      default_factory=lambda: ["--direct_running_mode=in_memory",
                               "--direct_num_workers=1"])
  metadata: MetadataConfig = dataclasses.field(default_factory=MetadataConfig)
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  session: SessionConfig = dataclasses.field(default_factory=SessionConfig)
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
  ranking: RankingConfig = dataclasses.field(default_factory=RankingConfig)
  serving: ServingConfig = dataclasses.field(default_factory=ServingConfig)

  # --- derived locations -------------------------------------------------
  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_dir, "pipeline_root")

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.output_dir, "metadata.sqlite")

  @property
  def serving_dir(self) -> str:
    return self.push_dir or os.path.join(self.output_dir, "serving")

  @property
  def ranking_serving_dir(self) -> str:
    """Pushed rating models: <serving_dir>/ranking/<version>/."""
    return os.path.join(self.serving_dir, RANKING_DIR)

  @property
  def has_ranking(self) -> bool:
    """Whether the pipeline has the ranking stage (needs rated data)."""
    return self.ranking.enabled and session_data.session_data(
        self.data.dataset).rated

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  def digest(self) -> str:
    """Short hash of every setting, to tell runs apart."""
    return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

  def feature_config(self) -> fc.FeatureConfig:
    """model.features, loaded and checked against the session settings."""
    features = self.model.features or DEFAULT_FEATURES.get(
        self.data.dataset, "")
    try:
      if isinstance(features, dict):
        config = fc.parse(features)
      elif isinstance(features, str) and features:
        path = features if os.path.exists(features) else os.path.join(
            FEATURES_DIR, f"{features}.yaml")
        if not os.path.exists(path):
          shipped = sorted(f[:-5] for f in os.listdir(FEATURES_DIR)
                           if f.endswith(".yaml"))
          raise fc.FeatureConfigError(
              f"{features!r} is neither a file nor a shipped config "
              f"({', '.join(shipped)})")
        config = fc.load(path)
      else:
        raise fc.FeatureConfigError(f"expected a name, a path or a mapping, "
                                    f"got {features!r}")
      fc.validate(config, self.session.max_item_genres, self.data.dataset)
    except fc.FeatureConfigError as e:
      raise ConfigError(f"model.features: {e}") from None
    return config

  def with_features(self, config: fc.FeatureConfig) -> "RunConfig":
    """A copy whose model.features is `config` itself (recorded inline)."""
    copy = from_json(self.to_json())
    copy.model.features = config.to_dict()
    return copy

  def sections(self, *names: str) -> Dict[str, Any]:
    """The named sections as plain dicts (a component's configuration)."""
    return {n: dataclasses.asdict(getattr(self, n)) for n in names}

  def validate(self) -> None:
    """Fails before the pipeline starts, naming the field that is wrong."""
    def require(ok: bool, field: str, why: str) -> None:
      if not ok:
        raise ConfigError(f"{field}: {why}")

    require(self.runner in RUNNERS, "runner",
            f"{self.runner!r} is not one of {', '.join(RUNNERS)}")
    require(self.metadata.backend in METADATA_BACKENDS, "metadata.backend",
            f"{self.metadata.backend!r} is not one of "
            f"{', '.join(METADATA_BACKENDS)}")
    require(self.metadata.mysql_port >= 0, "metadata.mysql_port",
            "must be >= 0 (0: RECSYS_MYSQL_PORT, else 3306)")
    require(self.data.dataset in DATASETS, "data.dataset",
            f"{self.data.dataset!r} is not one of {', '.join(DATASETS)}")
    require(self.data.max_malformed_lines >= 0, "data.max_malformed_lines",
            "must be >= 0")
    require(self.session.min_timeline_length >= 3,
            "session.min_timeline_length",
            "must be >= 3 (a train, an eval and a test interaction)")
    require(self.session.max_context_length >= 1,
            "session.max_context_length", "must be >= 1")
    require(self.session.max_item_genres >= 1,
            "session.max_item_genres", "must be >= 1")
    require(self.model.encoder in fc.SEQUENCE_ENCODERS, "model.encoder",
            f"{self.model.encoder!r} is not one of "
            f"{', '.join(fc.SEQUENCE_ENCODERS)}")
    require(0.0 <= self.model.dropout < 1.0, "model.dropout",
            "must be within [0, 1)")
    for name in ("cnn_filters", "cnn_kernel_size", "cnn_layers", "rnn_units",
                 "rnn_layers", "attention_units", "attention_layers",
                 "attention_heads"):
      require(getattr(self.model, name) >= 1, f"model.{name}", "must be >= 1")
    require(self.model.attention_units % self.model.attention_heads == 0,
            "model.attention_units", "must be a multiple of attention_heads")
    require(self.model.vocabulary_top_k >= 0, "model.vocabulary_top_k",
            "must be >= 0 (0 keeps every value)")
    require(self.model.vocabulary_min_count >= 1,
            "model.vocabulary_min_count", "must be >= 1")
    require(self.train.epochs >= 1, "train.epochs", "must be >= 1")
    require(self.train.batch_size >= 1, "train.batch_size", "must be >= 1")
    require(self.train.learning_rate > 0, "train.learning_rate", "must be > 0")
    require(self.train.loss in ("softmax", "sampled_softmax"), "train.loss",
            f"{self.train.loss!r} is not softmax or sampled_softmax")
    require(self.train.num_negatives >= 1, "train.num_negatives",
            "must be >= 1")
    require(self.train.patience >= 1, "train.patience", "must be >= 1")
    require(self.train.max_minutes > 0, "train.max_minutes", "must be > 0")
    self.feature_config()
    require(0.0 <= self.eval.min_hit_rate_at_10 <= 1.0,
            "eval.min_hit_rate_at_10", "must be within [0, 1]")
    require(-1.0 <= self.eval.max_hit_rate_drop <= 1.0,
            "eval.max_hit_rate_drop", "must be within [-1, 1]")
    require(len(self.eval.popularity_shares) == 2, "eval.popularity_shares",
            "must be two shares (where the head and the torso end)")
    try:
      self.eval.slice_params()
    except ValueError as e:
      raise ConfigError(f"eval: {e}") from None
    require(self.serving.top_k >= 1, "serving.top_k", "must be >= 1")
    ranking = self.ranking
    for name in ("embedding_dim", "epochs", "batch_size", "patience"):
      require(getattr(ranking, name) >= 1, f"ranking.{name}", "must be >= 1")
    require(bool(ranking.hidden_units) and min(ranking.hidden_units) >= 1,
            "ranking.hidden_units", "must be a non-empty list of sizes >= 1")
    require(0.0 <= ranking.dropout < 1.0, "ranking.dropout",
            "must be within [0, 1)")
    require(ranking.learning_rate > 0, "ranking.learning_rate", "must be > 0")
    require(ranking.max_minutes > 0, "ranking.max_minutes", "must be > 0")
    require(ranking.max_rmse_increase >= 0, "ranking.max_rmse_increase",
            "must be >= 0")
    require(bool(ranking.two_stage_candidates) and
            min(ranking.two_stage_candidates) >= 1,
            "ranking.two_stage_candidates", "must be counts >= 1")


def _check_type(value: Any, hint: Any, field: str) -> Any:
  """Checks (and mildly coerces) a value against a dataclass field's type."""
  if hint is Any:
    return value
  origin = typing.get_origin(hint)
  if origin is typing.Union:  # Optional[X]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if value is None:
      return None
    return _check_type(value, args[0], field)
  if origin in (list, List):
    (item,) = typing.get_args(hint)
    if isinstance(value, str):
      value = [v for v in value.split(",") if v]
    if not isinstance(value, list):
      raise ConfigError(f"{field}: expected a list, got {value!r}")
    return [_check_type(v, item, field) for v in value]
  if hint is float and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if hint is str and isinstance(value, (int, float)) and not isinstance(
      value, bool):
    return str(value)
  if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
    raise ConfigError(
        f"{field}: expected {hint.__name__}, got {value!r}")
  return value


def _apply(obj: Any, values: Dict[str, Any], prefix: str = "") -> None:
  hints = typing.get_type_hints(type(obj))
  fields = {f.name for f in dataclasses.fields(obj)}
  for key, value in values.items():
    field = f"{prefix}{key}"
    if key not in fields:
      raise ConfigError(
          f"{field}: unknown setting (known: {', '.join(sorted(fields))})")
    current = getattr(obj, key)
    if dataclasses.is_dataclass(current):
      if not isinstance(value, dict):
        raise ConfigError(f"{field}: expected a section (mapping), got {value!r}")
      _apply(current, value, prefix=f"{field}.")
    else:
      setattr(obj, key, _check_type(value, hints[key], field))


def parse_overrides(overrides: List[str]) -> Dict[str, Any]:
  """Turns ['model.encoder=bow', ...] into a nested dict (values as YAML)."""
  nested: Dict[str, Any] = {}
  for item in overrides:
    if "=" not in item:
      raise ConfigError(f"--set {item!r}: expected section.key=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
      raise ConfigError(f"--set {item!r}: empty key")
    node = nested
    for part in parts[:-1]:
      node = node.setdefault(part, {})
      if not isinstance(node, dict):
        raise ConfigError(f"--set {item!r}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
  return nested


def is_uri(path: str) -> bool:
  """gs://, s3://, hdfs:// ... : a location on storage, not a local path."""
  return "://" in path


def resolve_path(path: str, base_dir: Optional[str] = None) -> str:
  """A relative local path made absolute against base_dir (default: the
  working directory); absolute paths and URIs stay as they are."""
  if is_uri(path) or os.path.isabs(path):
    return path
  return os.path.normpath(os.path.join(base_dir or os.getcwd(), path))


def load_config(path: Optional[str] = None,
                overrides: Optional[List[str]] = None,
                values: Optional[Dict[str, Any]] = None,
                base_dir: Optional[str] = None) -> RunConfig:
  """Defaults <- config file <- --set overrides <- explicit values.

  `values` is a nested mapping like the file's (the CLI's --data-dir and
  --output-dir arrive this way).

  Relative paths are resolved against `base_dir` (default: the working
  directory; a compiled Kubeflow pipeline: the project inside its image), so
  that the recorded config and MLMD artifact URIs are absolute.
  """
  config = RunConfig()
  if path:
    try:
      with open(path, encoding="utf-8") as f:
        from_file = yaml.safe_load(f) or {}
    except OSError as e:
      raise ConfigError(f"cannot read config file {path}: {e}") from e
    except yaml.YAMLError as e:
      raise ConfigError(f"config file {path} is not valid YAML/JSON: {e}") from e
    if not isinstance(from_file, dict):
      raise ConfigError(f"config file {path}: expected a mapping at the top")
    _apply(config, from_file)
  if overrides:
    _apply(config, parse_overrides(overrides))
  if values:
    _apply(config, values)
  config.output_dir = resolve_path(config.output_dir, base_dir)
  config.data.data_dir = resolve_path(config.data.data_dir, base_dir)
  if config.push_dir:
    config.push_dir = resolve_path(config.push_dir, base_dir)
  config.validate()
  return config


def from_json(text: str) -> RunConfig:
  """Rebuilds a RunConfig from `to_json()` output (e.g. run_config.json)."""
  config = RunConfig()
  _apply(config, json.loads(text))
  return config
