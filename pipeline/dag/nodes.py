"""Node ids of the DAG, shared by the DAG and what reads a run's outputs
(runner, report): each model stage is a Trainer, the resolver of its latest
blessed model, an Evaluator and a Pusher. The retrieval stage keeps TFX's
default ids, so its cache and MLMD history carry over."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class Stage:
  trainer: str
  latest_blessed: str
  evaluator: str
  pusher: str


RETRIEVAL = Stage("Trainer", "latest_blessed_model", "Evaluator",
                  "TFLitePusher")
RANKING = Stage("rating_trainer", "latest_blessed_rating_model",
                "rating_evaluator", "rating_pusher")
TWO_STAGE_EVALUATOR = "two_stage_evaluator"
# The next-item ranker (ranker.enabled): the retrieval model trained without
# the ranker's labels, the candidates, the ranker's Trainer and the chain's
# Evaluator.
CANDIDATE_TRAINER = "candidate_trainer"
CANDIDATE_GEN = "candidate_gen"
RANKER_TRAINER = "ranker_trainer"
RANKER_EVALUATOR = "ranker_evaluator"
# The retrieval model blessed before the newest span, on that span.
FORWARD_EVALUATOR = "forward_evaluator"
# TFX's default id of the DistributionValidator (data in spans: the newest
# span against the previous one).
DRIFT_VALIDATOR = "DistributionValidator"
# The model the retrieval Trainer warm-starts from (an Importer).
BASE_MODEL = "base_model"
# TFX's default id of the Tuner (tuner.enabled).
TUNER = "Tuner"
