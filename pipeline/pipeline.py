"""The TFX DAG: wiring only. Every setting comes from the RunConfig."""
import dataclasses
import json
import os
from typing import Optional

from ml_metadata.proto import metadata_store_pb2

from tfx import v1 as tfx
from tfx.orchestration import pipeline as tfx_pipeline

from components.aliccp_example_gen import AliCCPExampleGen
from components import rating_serving
from components.evaluation import eval_config, rating_eval_config
from components.movielens_example_gen import MovieLensExampleGen
from components.pusher import TFLitePusher
from components.sessionize import Sessionize
from components.two_stage import TwoStageEvaluator
from components import features as F
from pipeline import nodes
from pipeline.code_version import code_version
from pipeline.config import RunConfig

RATING_METRICS = {"model": rating_serving.RATING,
                  "global_mean": rating_serving.GLOBAL_MEAN_RATING,
                  "item_mean": rating_serving.ITEM_MEAN_RATING}
SCHEMAS_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "schemas")


def schema_file(dataset: str, schemas_dir: str = SCHEMAS_DIR) -> str:
  return os.path.join(schemas_dir, dataset, "schema.pbtxt")


def _trainer(module: str, transform, custom_config) -> tfx.components.Trainer:
  """A Trainer of `module`.run_fn on the Transform output: train split to
  fit, eval split to stop early."""
  return tfx.components.Trainer(
      run_fn=f"{module}.run_fn",
      examples=transform.outputs["transformed_examples"],
      transform_graph=transform.outputs["transform_graph"],
      train_args=tfx.proto.TrainArgs(splits=[F.TRAIN]),
      eval_args=tfx.proto.EvalArgs(splits=[F.EVAL]),
      custom_config={**custom_config, "code_version": code_version(module)})


def _latest_blessed(stage: nodes.Stage) -> tfx.dsl.Resolver:
  """The latest model of the stage's Trainer blessed by its Evaluator (each
  stage is compared with its own models only)."""
  return tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model,
                            producer_component_id=stage.trainer,
                            output_key="model"),
      model_blessing=tfx.dsl.Channel(
          type=tfx.types.standard_artifacts.ModelBlessing,
          producer_component_id=stage.evaluator, output_key="blessing"),
  ).with_id(stage.latest_blessed)


def create_pipeline(config: RunConfig, pipeline_root: Optional[str] = None,
                    schemas_dir: str = SCHEMAS_DIR,
                    metadata: Optional[metadata_store_pb2.ConnectionConfig] = None
                    ) -> tfx_pipeline.Pipeline:
  """The DAG of `config`. A compiled (Kubeflow) pipeline passes where the
  artifacts and the curated schemas are on the cluster, and no metadata
  connection (Kubeflow keeps its own store)."""
  features = config.feature_config().to_dict()
  if config.data.dataset == "aliccp":
    example_gen = AliCCPExampleGen(
        data_dir=config.data.data_dir,
        group_bucket_bytes=config.data.group_bucket_bytes,
        max_malformed_lines=config.data.max_malformed_lines,
        code_version=code_version(AliCCPExampleGen.__module__))
  else:
    example_gen = MovieLensExampleGen(
        data_dir=config.data.data_dir,
        max_malformed_lines=config.data.max_malformed_lines,
        code_version=code_version(MovieLensExampleGen.__module__))
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs["examples"])
  schema_gen = tfx.components.ImportSchemaGen(
      schema_file=schema_file(config.data.dataset, schemas_dir))
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs["statistics"],
      schema=schema_gen.outputs["schema"])
  sessionize = Sessionize(
      examples=example_gen.outputs["examples"],
      anomalies=example_validator.outputs["anomalies"],
      session_config=json.dumps(config.sections("session")["session"]),
      dataset=config.data.dataset,
      group_bucket_bytes=config.data.group_bucket_bytes,
      slice_config=json.dumps(dataclasses.asdict(config.eval.slice_params())),
      code_version=code_version(Sessionize.__module__))
  transform = tfx.components.Transform(
      examples=sessionize.outputs["sessions"],
      schema=sessionize.outputs["schema"],
      preprocessing_fn="components.transform.preprocessing_fn",
      splits_config=tfx.proto.SplitsConfig(analyze=[F.TRAIN],
                                           transform=list(F.SPLITS)),
      # TFDV statistics of the session examples before and after the
      # transform: nothing reads them (StatisticsGen covers the raw data,
      # the Sessionize report the sessions), and they cost most of the
      # component's time on small data.
      disable_statistics=True,
      custom_config={**config.sections("session", "model"),
                     "features": features,
                     "code_version": code_version("components.transform")})
  trainer = _trainer("components.trainer", transform, {
      **config.sections("session", "model", "train", "serving"),
      "features": features})
  # The latest blessed model of this pipeline: the Evaluator's baseline.
  latest_blessed = _latest_blessed(nodes.RETRIEVAL)
  evaluator = tfx.components.Evaluator(
      examples=sessionize.outputs["sessions"],
      model=trainer.outputs["model"],
      baseline_model=latest_blessed.outputs["model"],
      example_splits=[F.TEST],
      eval_config=eval_config(config.eval.min_hit_rate_at_10,
                              config.eval.max_hit_rate_drop))
  pusher = TFLitePusher(
      model=trainer.outputs["model"],
      model_blessing=evaluator.outputs["blessing"],
      evaluation=evaluator.outputs["evaluation"],
      catalog=sessionize.outputs["catalog"],
      push_dir=config.serving_dir,
      run_config=config.to_json(),
      code_version=code_version(TFLitePusher.__module__))
  components = [example_gen, statistics_gen, schema_gen, example_validator,
                sessionize, transform, trainer, latest_blessed, evaluator,
                pusher]
  if config.has_ranking:
    components += _ranking_stage(config, features, sessionize, transform,
                                 trainer)
  return tfx.dsl.Pipeline(
      pipeline_name=config.name,
      pipeline_root=pipeline_root or config.pipeline_root,
      components=components,
      enable_cache=True,
      metadata_connection_config=metadata,
      beam_pipeline_args=config.beam_args)


def _ranking_stage(config: RunConfig, features, sessionize, transform,
                   trainer) -> list:
  """The rating model's Trainer, Evaluator and Pusher on the same Transform
  output, and the two-stage evaluation of both models."""
  rating_trainer = _trainer("components.rating_trainer", transform, {
      **config.sections("session", "ranking", "serving"),
      "train": {"seed": config.train.seed}, "features": features,
  }).with_id(nodes.RANKING.trainer)
  latest_blessed = _latest_blessed(nodes.RANKING)
  rating_evaluator = tfx.components.Evaluator(
      examples=sessionize.outputs["sessions"],
      model=rating_trainer.outputs["model"],
      baseline_model=latest_blessed.outputs["model"],
      example_splits=[F.TEST],
      eval_config=rating_eval_config(config.ranking.min_rmse_gain,
                                     config.ranking.max_rmse_increase),
  ).with_id(nodes.RANKING.evaluator)
  rating_pusher = TFLitePusher(
      model=rating_trainer.outputs["model"],
      model_blessing=rating_evaluator.outputs["blessing"],
      evaluation=rating_evaluator.outputs["evaluation"],
      push_dir=config.ranking_serving_dir,
      run_config=config.to_json(),
      metric_outputs=RATING_METRICS,
      code_version=code_version(TFLitePusher.__module__),
  ).with_id(nodes.RANKING.pusher)
  two_stage = TwoStageEvaluator(
      examples=sessionize.outputs["sessions"],
      model=trainer.outputs["model"],
      rating_model=rating_trainer.outputs["model"],
      candidates=config.ranking.two_stage_candidates,
      code_version=code_version(TwoStageEvaluator.__module__),
  ).with_id(nodes.TWO_STAGE_EVALUATOR)
  return [rating_trainer, latest_blessed, rating_evaluator, rating_pusher,
          two_stage]
