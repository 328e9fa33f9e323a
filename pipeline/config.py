"""One config object that records every knob of a run.

`RunConfig` composes the sections the TFX steps consume (defined once, with
their defaults and help, in components/lib/settings.py) with the settings
only the orchestration uses (below). It is built from defaults, an optional
YAML/JSON file (`--config`) and `--set section.key=value` overrides,
validated before the pipeline starts, and written in full into the run's
output directory (`run_config.json`) and onto the run in ML Metadata. Each
step receives only the part it reads (`step_settings`), so that changing,
say, the number of epochs re-runs training but reuses the cached ingestion.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import textwrap
import typing
from typing import Any, Dict, List, Optional, Set

import yaml

from components.lib import feature_config as fc
from components.lib import layout
from components.lib import session_data
from components.lib import settings
from components.lib.settings import (ConfigError, DataConfig, EvalConfig,
                                     ModelConfig, RankerConfig, RankingConfig,
                                     ServingConfig, SessionConfig, TrainConfig,
                                     TunerConfig, setting)

RUNNERS = ("local", "beam")
METADATA_BACKENDS = ("sqlite", "mysql")
# model.features when it is left empty: the data set's own feature groups.
DEFAULT_FEATURES = {"movielens": "movielens_features",
                    "aliccp": "aliccp_features"}
FEATURES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "features")
# Shipped profiles: settings applied before the user's (pipeline/profiles/).
PROFILES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "profiles")
DEFAULT_PROFILE = "ondevice"
# The run layout in the output directory.
RUN_CONFIG_FILE = "run_config.json"
LOG_FILE = os.path.join("logs", "run.log")
TIMINGS_FILE = "component_timings.json"
RUNNING_FILE = "running.json"
# RunConfig's record of what a run adapted to its data.
ADAPTED = "adapted"


@dataclasses.dataclass
class MetadataConfig(settings.Section):
  backend: str = setting(
      "sqlite", "the ML Metadata store (lineage, cache): sqlite, a file in "
      "the output directory, or mysql, a database several machines share "
      "(Kubeflow keeps its own)")
  mysql_host: str = setting("", "mysql: host (empty: RECSYS_MYSQL_HOST)")
  mysql_port: int = setting(0, "mysql: port (0: RECSYS_MYSQL_PORT, else "
                            "3306)")
  mysql_database: str = setting(
      "", "mysql: database (empty: RECSYS_MYSQL_DATABASE); the password is "
      "read from RECSYS_MYSQL_PASSWORD only, never recorded")
  mysql_user: str = setting("", "mysql: user (empty: RECSYS_MYSQL_USER)")

  def check(self, prefix: str) -> None:
    if self.backend not in METADATA_BACKENDS:
      raise ConfigError(f"{prefix}.backend: {self.backend!r} is not one of "
                        f"{', '.join(METADATA_BACKENDS)}")
    if self.mysql_port < 0:
      raise ConfigError(f"{prefix}.mysql_port: must be >= 0 (0: "
                        "RECSYS_MYSQL_PORT, else 3306)")


def _section(cls):
  return dataclasses.field(default_factory=cls)


@dataclasses.dataclass
class RunConfig:
  profile: str = setting(
      DEFAULT_PROFILE, "shipped settings applied before the config file and "
      "--set (pipeline/profiles/): ondevice (the pushed model sized for a "
      "phone: README, On the device), small (the smallest and fastest: the "
      "5 most recent items, ids only), quality (the long-history model: best "
      "test metrics, larger and slower)")
  name: str = setting("recsys", "pipeline name (its runs in ML Metadata)")
  output_dir: str = setting(
      "output/sample", "pipeline root, metadata store, logs and pushed models")
  push_dir: str = setting(
      "", "pushed models land in PUSH_DIR/VERSION/ (empty: "
      "OUTPUT_DIR/serving)")
  runner: str = setting(
      "local", "orchestrator: local (TFX's LocalDagRunner) or beam "
      "(BeamDagRunner: the DAG itself is a Beam pipeline); Kubeflow runs a "
      "compiled pipeline instead (`recsys compile`)")
  beam_args: List[str] = setting(
      ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
      "arguments of every component's Beam job (DirectRunner, Flink, Spark "
      "or Dataflow flags; --beam-arg replaces them)")
  adapt: bool = setting(
      True, "recsys run adapts the settings left unset to the data's shape "
      "before it starts (context length, loss, patience; "
      "pipeline/adaptive.py), printing and recording each decision")
  metadata: MetadataConfig = _section(MetadataConfig)
  data: DataConfig = _section(DataConfig)
  session: SessionConfig = _section(SessionConfig)
  model: ModelConfig = _section(ModelConfig)
  train: TrainConfig = _section(TrainConfig)
  eval: EvalConfig = _section(EvalConfig)
  ranking: RankingConfig = _section(RankingConfig)
  ranker: RankerConfig = _section(RankerConfig)
  serving: ServingConfig = _section(ServingConfig)
  tuner: TunerConfig = _section(TunerConfig)
  # What the run adapted to its data, {setting: why} (pipeline/adaptive.py):
  # recorded, never set.
  adapted: Dict[str, str] = dataclasses.field(default_factory=dict)

  # --- derived locations -------------------------------------------------
  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_dir, "pipeline_root")

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.output_dir, "metadata.sqlite")

  @property
  def run_config_path(self) -> str:
    return os.path.join(self.output_dir, RUN_CONFIG_FILE)

  @property
  def log_path(self) -> str:
    return os.path.join(self.output_dir, LOG_FILE)

  @property
  def running_path(self) -> str:
    """Who is running the pipeline here now (removed when the run ends)."""
    return os.path.join(self.output_dir, RUNNING_FILE)

  @property
  def reports_dir(self) -> str:
    """Reports kept outside the pipeline root: a failed step's outputs are
    removed, these stay (the ingestion report)."""
    return os.path.join(self.output_dir, "reports")

  @property
  def timings_path(self) -> str:
    return os.path.join(self.output_dir, TIMINGS_FILE)

  @property
  def serving_dir(self) -> str:
    return self.push_dir or os.path.join(self.output_dir, "serving")

  @property
  def ranking_serving_dir(self) -> str:
    """Pushed rating models: <serving_dir>/ranking/<version>/."""
    return os.path.join(self.serving_dir, layout.RANKING_DIR)

  @property
  def ranker_serving_dir(self) -> str:
    """Pushed next-item rankers: <serving_dir>/ranker/<version>/."""
    return os.path.join(self.serving_dir, layout.RANKER_DIR)

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
      if self.model.item_embedding_dim:
        config = config.with_item_embedding_dim(self.model.item_embedding_dim)
      fc.validate(config, self.session.max_item_genres, self.data.dataset)
    except fc.FeatureConfigError as e:
      raise ConfigError(f"model.features: {e}") from None
    return config

  def with_features(self, config: fc.FeatureConfig) -> "RunConfig":
    """A copy whose model.features is `config` itself (recorded inline)."""
    copy = from_json(self.to_json())
    copy.model.features = config.to_dict()
    return copy

  def with_data_features(self, data_dir: Optional[str] = None) -> "RunConfig":
    """A copy whose feature groups are resolved against the data: optional
    groups are dropped when the data set lacks them (no users in the CSV
    layouts). `data_dir` is where to look (default: data.data_dir); a wrong
    path fails here, naming it."""
    return self.with_features(fc.resolve(
        self.feature_config(),
        _has_user_features(self.data, data_dir or self.data.data_dir)))

  def step_settings(self, cls):
    """The part of this config that a step reads, as its StepSettings
    class `cls` declares it (components/lib/settings.py)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
      kind = hints[field.name]
      values[field.name] = (self.feature_config() if kind is fc.FeatureConfig
                            else kind(**settings.part(
                                getattr(self, field.name), kind)))
    return cls(**values)

  def validate(self) -> None:
    """Fails before the pipeline starts, naming the setting that is wrong."""
    if self.runner not in RUNNERS:
      raise ConfigError(f"runner: {self.runner!r} is not one of "
                        f"{', '.join(RUNNERS)}")
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if isinstance(value, settings.Section):
        value.check(field.name)
    self.feature_config()


def _has_user_features(data: settings.DataConfig, data_dir: str) -> bool:
  """Detects the input files and tells whether they have user features."""
  # pylint: disable=import-outside-toplevel
  from components.lib import spans
  if data.dataset == session_data.ALICCP:
    from components.lib.aliccp_format import detect_files
    detect_files(spans.span_dir(data_dir))
    return True
  from components.lib.movielens_formats import detect_files  # pylint: disable=reimported
  return detect_files(spans.span_dir(data_dir), data.layout, data.encoding,
                      spans.catalog_dirs(data_dir)).users is not None


def help_text(width: int = 79) -> str:
  """Every setting with its default and help: `recsys run --help`."""
  lines = ["settings (--set NAME=VALUE, or the same keys in --config FILE):"]
  for name, default, text in settings.describe(RunConfig()):
    lines.append(f"  {name}  (default {settings.format_value(default)})")
    lines += textwrap.wrap(text, width, initial_indent=" " * 6,
                           subsequent_indent=" " * 6)
  return "\n".join(lines) + "\n"


def _check_type(value: Any, hint: Any, field: str) -> Any:
  """Checks (and mildly coerces) a value against a dataclass field's type."""
  if hint is Any:
    return value
  origin = typing.get_origin(hint)
  if origin in (dict, Dict):
    if not isinstance(value, dict):
      raise ConfigError(f"{field}: expected a mapping, got {value!r}")
    return {str(k): str(v) for k, v in value.items()}
  if origin is typing.Union:  # Optional[X]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if value is None:
      return None
    return _check_type(value, args[0], field)
  if origin in (list, List):
    (item,) = typing.get_args(hint)
    if isinstance(value, str):  # --set NAME=A,B
      value = [yaml.safe_load(v) for v in value.split(",") if v.strip()]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
      value = [value]  # --set NAME=10: a list of one
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


def _sources(path: Optional[str], overrides: Optional[List[str]],
             values: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """The nested mappings a config is built from, in the order they apply:
  the profile they name (default DEFAULT_PROFILE), the file, the --set
  overrides, the explicit values."""
  sources = []
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
    sources.append(from_file)
  if overrides:
    sources.append(parse_overrides(overrides))
  if values:
    sources.append(values)
  profile = DEFAULT_PROFILE
  for source in sources:
    profile = source.get("profile", profile)
  return [profile_settings(profile)] + sources


def shipped_profiles() -> List[str]:
  return sorted(f[:-5] for f in os.listdir(PROFILES_DIR)
                if f.endswith(".yaml"))


def profile_settings(name: str) -> Dict[str, Any]:
  """The settings of a shipped profile (pipeline/profiles/NAME.yaml)."""
  path = os.path.join(PROFILES_DIR, f"{name}.yaml")
  if not isinstance(name, str) or not os.path.exists(path):
    raise ConfigError(f"profile: {name!r} is not one of "
                      f"{', '.join(shipped_profiles())}")
  with open(path, encoding="utf-8") as f:
    return yaml.safe_load(f) or {}


def given_settings(path: Optional[str] = None,
                   overrides: Optional[List[str]] = None,
                   values: Optional[Dict[str, Any]] = None) -> Set[str]:
  """The dotted names of the settings the file, the overrides and the
  values give (what load_config would not leave at its default)."""
  def names(mapping, prefix=""):
    for key, value in mapping.items():
      if isinstance(value, dict) and key != ADAPTED:
        yield from names(value, f"{prefix}{key}.")
      else:
        yield f"{prefix}{key}"
  return {name for source in _sources(path, overrides, values)
          for name in names(source)}


def load_config(path: Optional[str] = None,
                overrides: Optional[List[str]] = None,
                values: Optional[Dict[str, Any]] = None,
                base_dir: Optional[str] = None) -> RunConfig:
  """Defaults <- profile <- config file <- --set overrides <- explicit
  values.

  `values` is a nested mapping like the file's (the CLI's --data-dir and
  --output-dir arrive this way).

  Relative paths are resolved against `base_dir` (default: the working
  directory; a compiled Kubeflow pipeline: the project inside its image), so
  that the recorded config and MLMD artifact URIs are absolute.
  """
  config = RunConfig()
  for source in _sources(path, overrides, values):
    if ADAPTED in source:
      raise ConfigError(f"{ADAPTED}: recorded by a run, not a setting")
    _apply(config, source)
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
