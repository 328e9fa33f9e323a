"""The TFX DAG: wiring only. Every setting comes from the RunConfig, and each
step gets only the part of it that it reads."""
import os
from typing import List, Optional

from ml_metadata.proto import metadata_store_pb2
import tensorflow as tf

from tfx import v1 as tfx
from tfx.dsl.input_resolution import canned_resolver_functions as resolver_functions
from tfx.components.distribution_validator.component import DistributionValidator
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import distribution_validator_pb2
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import path_pb2
from tensorflow_metadata.proto.v0 import schema_pb2

from components.candidate_gen.component import CandidateGen
from components.example_gen import executor as base_executor
from components.example_gen.aliccp.component import AliCCPExampleGen
from components.example_gen.movielens.component import MovieLensExampleGen
from components.forward_evaluator.component import ForwardEvaluator
from components.lib import features as F
from components.lib import layout
from components.lib import spans
from components.model.export import signature_names as names
from components.sessionize.component import Sessionize
from components.sessionize.executor import SessionizeSettings
from components.tflite_pusher.component import TFLitePusher
from components.two_stage_evaluator.component import TwoStageEvaluator
from components.user_modules import evaluation
from components.user_modules.ranker_trainer import RankerTrainerSettings
from components.user_modules.rating_trainer import RatingTrainerSettings
from components.user_modules.trainer import (HOLD_OUT_RANKER_LABELS,
                                             TrainerSettings)
from components.user_modules.transform import TransformSettings
from components.user_modules.tuner import TunerSettings
from pipeline import PROJECT_ROOT
from pipeline.config import RunConfig
from pipeline.dag import nodes
from pipeline.dag.code_version import code_version

# metadata.json's metrics of the rating model: {name: the evaluation's output}.
RATING_METRICS = {"model": names.RATING,
                  "global_mean": names.GLOBAL_MEAN_RATING,
                  "item_mean": names.ITEM_MEAN_RATING}
# metadata.json's metrics of the ranker: its evaluation's candidate is the
# two stages (retrieval alone, the baseline, is in the retrieval bundle).
RANKER_METRICS = {"two_stages": names.SCORES}
SCHEMAS_DIR = os.path.join(PROJECT_ROOT, "schemas")
_USER_MODULES = "components.user_modules"


def schema_file(dataset: str, schemas_dir: str = SCHEMAS_DIR) -> str:
  return os.path.join(schemas_dir, dataset, "schema.pbtxt")


def spans_in_window(example_gen, data_dir: str, window: int):
  """The Examples of every span of `data_dir` that `example_gen` has
  ingested, in this run or an earlier one (the latest ingestion of each
  span), the newest `window` of them (data.span_window; 0: all). A plain
  Channel of the producer's output, not the output itself: in a synchronous
  pipeline that would hold this run's artifact alone. Spans of another data
  directory read into the same output directory are left out."""
  ingested = resolver_functions.filter_custom_property_equal(
      tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                      producer_component_id=example_gen.id,
                      output_key="examples"),
      key=base_executor.DATA_DIR_PROPERTY, value=data_dir)
  if window:
    return resolver_functions.rolling_range(ingested, num_spans=window,
                                            min_spans=1)
  return resolver_functions.all_spans(ingested)


def _trainer(module: str, transform, step, hyperparameters=None,
             trained_through_span: Optional[int] = None,
             base_model=None, examples=None, train_split: str = F.TRAIN,
             extra_config: Optional[dict] = None) -> tfx.components.Trainer:
  """A Trainer of `module`.run_fn on the Transform output (or `examples`):
  `train_split` to fit, the eval split to stop early; `step` is the
  module's settings, `hyperparameters` the Tuner's best when the pipeline
  tunes, `trained_through_span` the newest span of the data, which the
  model records (forward evaluation and warm start check it), `base_model`
  the model it starts from (retrieval: a warm start; the ranker: the
  retrieval model it follows) and `extra_config` more of its
  custom_config."""
  span = ({layout.TRAINED_THROUGH_SPAN: trained_through_span}
          if trained_through_span is not None else {})
  return tfx.components.Trainer(
      run_fn=f"{module}.run_fn",
      examples=examples or transform.outputs["transformed_examples"],
      transform_graph=transform.outputs["transform_graph"],
      hyperparameters=hyperparameters,
      base_model=base_model,
      train_args=tfx.proto.TrainArgs(splits=[train_split]),
      eval_args=tfx.proto.EvalArgs(splits=[F.EVAL]),
      custom_config={**step.to_dict(), "code_version": code_version(module),
                     **span, **(extra_config or {})})


def _tuner(transform, step: TunerSettings) -> tfx.components.Tuner:
  """TFX's Tuner of the retrieval model (tuner.py), on the same data as its
  Trainer."""
  module = f"{_USER_MODULES}.tuner"
  return tfx.components.Tuner(
      tuner_fn=f"{module}.tuner_fn",
      examples=transform.outputs["transformed_examples"],
      transform_graph=transform.outputs["transform_graph"],
      train_args=tfx.proto.TrainArgs(splits=[F.TRAIN]),
      eval_args=tfx.proto.EvalArgs(splits=[F.EVAL]),
      custom_config={**step.to_dict(), "code_version": code_version(module)})


def _evaluate_and_push(stage: nodes.Stage, trainer, sessions, eval_config,
                       push_dir: str, **pusher_args) -> List:
  """A model stage after its Trainer: the resolver of the stage's latest
  blessed model (each stage is compared with its own models only), the
  Evaluator on the test split with that model as the baseline, and the
  Pusher of a blessed model."""
  latest_blessed = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model,
                            producer_component_id=stage.trainer,
                            output_key="model"),
      model_blessing=tfx.dsl.Channel(
          type=tfx.types.standard_artifacts.ModelBlessing,
          producer_component_id=stage.evaluator, output_key="blessing"),
  ).with_id(stage.latest_blessed)
  evaluator = tfx.components.Evaluator(
      examples=sessions,
      model=trainer.outputs["model"],
      baseline_model=latest_blessed.outputs["model"],
      example_splits=[F.TEST],
      eval_config=eval_config).with_id(stage.evaluator)
  pusher = TFLitePusher(
      model=trainer.outputs["model"],
      model_blessing=evaluator.outputs["blessing"],
      evaluation=evaluator.outputs["evaluation"],
      push_dir=push_dir,
      code_version=code_version(TFLitePusher.__module__),
      **pusher_args).with_id(stage.pusher)
  return [latest_blessed, evaluator, pusher]


def _ranker(config: RunConfig, transform, sessions, trainer,
            hyperparameters, retrieval_pusher) -> List:
  """The next-item ranker after retrieval's Trainer: the retrieval model
  trained without the ranker's labels (same settings), CandidateGen, the
  ranker's Trainer (its base_model: the retrieval model it follows), TFX's
  Evaluator of the chain against retrieval alone, and the Pusher of a
  blessed ranker beside the retrieval version it follows."""
  retrieval_module = f"{_USER_MODULES}.trainer"
  candidate_trainer = _trainer(
      retrieval_module, transform, config.step_settings(TrainerSettings),
      hyperparameters,
      extra_config={HOLD_OUT_RANKER_LABELS: True}).with_id(
          nodes.CANDIDATE_TRAINER)
  candidate_gen = CandidateGen(
      examples=sessions, model=trainer.outputs["model"],
      holdout_model=candidate_trainer.outputs["model"],
      candidates=config.ranker.candidates,
      code_version=code_version(CandidateGen.__module__)).with_id(
          nodes.CANDIDATE_GEN)
  ranker_trainer = _trainer(
      f"{_USER_MODULES}.ranker_trainer", transform,
      config.step_settings(RankerTrainerSettings),
      base_model=trainer.outputs["model"],
      examples=candidate_gen.outputs["candidates"],
      train_split=F.RANKER_TRAIN).with_id(nodes.RANKER.trainer)
  evaluator = tfx.components.Evaluator(
      examples=sessions, model=ranker_trainer.outputs["model"],
      baseline_model=trainer.outputs["model"], example_splits=[F.TEST],
      eval_config=evaluation.eval_config(
          min_ndcg_gain=config.ranker.min_ndcg_gain)).with_id(
              nodes.RANKER.evaluator)
  pusher = TFLitePusher(
      model=ranker_trainer.outputs["model"],
      model_blessing=evaluator.outputs["blessing"],
      evaluation=evaluator.outputs["evaluation"],
      examples=sessions,
      retrieval_push=retrieval_pusher.outputs["pushed_model"],
      push_dir=config.ranker_serving_dir,
      metric_outputs=RANKER_METRICS,
      max_tflite_drop=config.serving.max_tflite_drop,
      code_version=code_version(TFLitePusher.__module__)).with_id(
          nodes.RANKER.pusher)
  return [candidate_trainer, candidate_gen, ranker_trainer, evaluator, pusher]


def _example_gen(config: RunConfig, curated: str,
                 span: Optional[int] = None):
  """The data set's ExampleGen; it ingests `span` (None: the newest). The
  span is named even when it is the newest, so that an execution that
  ingested it is a cache hit for the next run, which backfills it
  (create_ingestion_pipeline) once a newer span has arrived."""
  data = config.data
  if span is None and tf.io.gfile.isdir(data.data_dir):
    span = spans.newest_span(data.data_dir)
  common = dict(data_dir=data.data_dir,
                max_malformed_lines=data.max_malformed_lines,
                reports_dir=config.reports_dir, schema_file=curated,
                duplicates=data.duplicates,
                group_bucket_bytes=data.group_bucket_bytes, span=span)
  if data.dataset == "aliccp":
    return AliCCPExampleGen(
        code_version=code_version(AliCCPExampleGen.__module__), **common)
  return MovieLensExampleGen(
      code_version=code_version(MovieLensExampleGen.__module__),
      layout=data.layout, encoding=data.encoding, **common)


def drift_config(schema_path: str
                 ) -> Optional[distribution_validator_pb2.DistributionValidatorConfig]:
  """DistributionValidator's bounds: the drift_comparator of each feature of
  the curated schema (one place for every bound on the raw data); None when
  it has none."""
  schema = schema_pb2.Schema()
  with tf.io.gfile.GFile(schema_path) as f:
    text_format.Parse(f.read(), schema)
  found = distribution_validator_pb2.DistributionValidatorConfig()
  for feature in schema.feature:
    if feature.HasField("drift_comparator"):
      found.default_slice_config.feature.add(
          path=path_pb2.Path(step=[feature.name]),
          distribution_comparator=feature.drift_comparator)
  return found if found.default_slice_config.feature else None


def _drift_validator(statistics_gen, previous_span: int, config):
  """The newest span's statistics against those of `previous_span`, which
  an earlier run (or this run's backfill) computed: the latest of them.
  Selected by the span number itself: TFX's span resolver functions want a
  `version` property, which ExampleStatistics does not have."""
  previous = resolver_functions.latest_created(
      resolver_functions.filter_property_equal(
          tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics,
                          producer_component_id=statistics_gen.id,
                          output_key="statistics"),
          key="span", value=previous_span), n=1)
  return DistributionValidator(
      statistics=statistics_gen.outputs["statistics"],
      baseline_statistics=previous, config=config).with_id(
          nodes.DRIFT_VALIDATOR)


def create_ingestion_pipeline(
    config: RunConfig, span: int,
    metadata: Optional[metadata_store_pb2.ConnectionConfig] = None
) -> tfx_pipeline.Pipeline:
  """The pipeline's ExampleGen and StatisticsGen alone, ingesting `span`
  (TFX's RangeConfig): what a run does first for each earlier span of its
  window (a backfill; cached once done). Same pipeline, nodes and store as
  create_pipeline's, so that spans_in_window finds the span and the next
  span's drift check its statistics."""
  example_gen = _example_gen(config, schema_file(config.data.dataset), span)
  return tfx.dsl.Pipeline(
      pipeline_name=config.name, pipeline_root=config.pipeline_root,
      components=[example_gen, tfx.components.StatisticsGen(
          examples=example_gen.outputs["examples"])],
      enable_cache=True, metadata_connection_config=metadata,
      beam_pipeline_args=config.beam_args)


def create_pipeline(config: RunConfig, pipeline_root: Optional[str] = None,
                    schemas_dir: str = SCHEMAS_DIR,
                    metadata: Optional[metadata_store_pb2.ConnectionConfig] = None,
                    resolve_spans: bool = True,
                    base_model_uri: Optional[str] = None
                    ) -> tfx_pipeline.Pipeline:
  """The DAG of `config`. A compiled (Kubeflow) pipeline passes where the
  artifacts and the curated schemas are on the cluster, and no metadata
  connection (Kubeflow keeps its own store); and `resolve_spans=False`:
  TFX's Kubeflow V2 compiler takes no resolver functions (only the latest
  artifact and latest blessed model resolvers), so there Sessionize reads
  the span its run ingested, not the window of spans_in_window, and no
  span is checked for drift against the previous one. `base_model_uri`:
  the retrieval model the Trainer warm-starts from (imported; the runner
  finds it in MLMD: runners/local.py warm_start_model)."""
  data = config.data
  curated = schema_file(data.dataset, schemas_dir)
  example_gen = _example_gen(config, curated)
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs["examples"])
  schema_gen = tfx.components.ImportSchemaGen(
      schema_file=curated)
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs["statistics"],
      schema=schema_gen.outputs["schema"])
  validators = [example_validator]
  previous_span = (spans.previous_span(data.data_dir)
                   if tf.io.gfile.isdir(data.data_dir) else None)
  bounds = (drift_config(curated)
            if resolve_spans and previous_span is not None else None)
  if bounds:
    validators.append(_drift_validator(statistics_gen, previous_span, bounds))
  sessionize = Sessionize(
      examples=(spans_in_window(example_gen, data.data_dir, data.span_window)
                if resolve_spans else example_gen.outputs["examples"]),
      anomalies=example_validator.outputs["anomalies"],
      drift=(validators[-1].outputs["anomalies"]
             if bounds and not data.accept_drift else None),
      settings=config.step_settings(SessionizeSettings),
      code_version=code_version(Sessionize.__module__))
  sessions = sessionize.outputs["sessions"]
  transform_module = f"{_USER_MODULES}.transform"
  transform = tfx.components.Transform(
      examples=sessions,
      schema=sessionize.outputs["schema"],
      preprocessing_fn=f"{transform_module}.preprocessing_fn",
      splits_config=tfx.proto.SplitsConfig(analyze=[F.TRAIN],
                                           transform=list(F.SPLITS)),
      # TFDV statistics of the session examples before and after the
      # transform: nothing reads them (StatisticsGen covers the raw data,
      # the Sessionize report the sessions), and they cost most of the
      # component's time on small data.
      disable_statistics=True,
      custom_config={**config.step_settings(TransformSettings).to_dict(),
                     "code_version": code_version(transform_module)})
  components = [example_gen, statistics_gen, schema_gen, *validators,
                sessionize, transform]
  best_hyperparameters = None
  if config.tuner.enabled:
    tuner = _tuner(transform, config.step_settings(TunerSettings))
    components.append(tuner)
    best_hyperparameters = tuner.outputs["best_hyperparameters"]
  newest = None
  if resolve_spans:
    newest = (spans.newest_span(data.data_dir)
              if tf.io.gfile.isdir(data.data_dir) else None)
    newest = spans.FLAT_SPAN if newest is None else newest
  base_model = None
  if base_model_uri:
    importer = tfx.dsl.Importer(
        source_uri=base_model_uri,
        artifact_type=tfx.types.standard_artifacts.Model,
        # The Trainer's own artifact, not a copy: the Trainer's inputs stay
        # the same from run to run, and so does its cache key.
        reimport=False).with_id(nodes.BASE_MODEL)
    components.append(importer)
    base_model = importer.outputs["result"]
  trainer = _trainer(f"{_USER_MODULES}.trainer", transform,
                     config.step_settings(TrainerSettings),
                     best_hyperparameters, newest, base_model)
  components.append(trainer)
  retrieval = _evaluate_and_push(
      nodes.RETRIEVAL, trainer, sessions,
      evaluation.eval_config(config.eval.min_hit_rate_at_10,
                             config.eval.max_hit_rate_drop),
      config.serving_dir, catalog=sessionize.outputs["catalog"],
      examples=sessions, max_tflite_drop=config.serving.max_tflite_drop)
  components += retrieval
  if resolve_spans:
    latest_blessed = retrieval[0]
    components.append(ForwardEvaluator(
        examples=sessions, model=latest_blessed.outputs["model"],
        eval_config=evaluation.eval_config(),
        code_version=code_version(ForwardEvaluator.__module__),
    ).with_id(nodes.FORWARD_EVALUATOR))
  if config.ranker.enabled:
    components += _ranker(config, transform, sessions, trainer,
                          best_hyperparameters, retrieval[-1])
  if config.has_ranking:
    rating_trainer = _trainer(
        f"{_USER_MODULES}.rating_trainer", transform,
        config.step_settings(RatingTrainerSettings)).with_id(
            nodes.RANKING.trainer)
    components.append(rating_trainer)
    components += _evaluate_and_push(
        nodes.RANKING, rating_trainer, sessions,
        evaluation.rating_eval_config(config.ranking.min_rmse_gain,
                                      config.ranking.max_rmse_increase),
        config.ranking_serving_dir, metric_outputs=RATING_METRICS)
    components.append(TwoStageEvaluator(
        examples=sessions,
        model=trainer.outputs["model"],
        rating_model=rating_trainer.outputs["model"],
        candidates=config.ranking.two_stage_candidates,
        code_version=code_version(TwoStageEvaluator.__module__),
    ).with_id(nodes.TWO_STAGE_EVALUATOR))
  return tfx.dsl.Pipeline(
      pipeline_name=config.name,
      pipeline_root=pipeline_root or config.pipeline_root,
      components=components,
      enable_cache=True,
      metadata_connection_config=metadata,
      beam_pipeline_args=config.beam_args)
