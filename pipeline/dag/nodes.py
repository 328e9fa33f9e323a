"""Node ids of the DAG, shared by the DAG and what reads a run's outputs
(runner, report): each model stage is a Trainer, an Evaluator and a
Pusher, and (retrieval, rating) the resolver of its latest blessed model,
the Evaluator's baseline. The retrieval stage keeps TFX's default ids, so
its cache and MLMD history carry over."""
import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Stage:
  trainer: str
  evaluator: str
  pusher: str
  latest_blessed: Optional[str] = None


RETRIEVAL = Stage("Trainer", "Evaluator", "TFLitePusher",
                  latest_blessed="latest_blessed_model")
RANKING = Stage("rating_trainer", "rating_evaluator", "rating_pusher",
                latest_blessed="latest_blessed_rating_model")
TWO_STAGE_EVALUATOR = "two_stage_evaluator"
# The next-item ranker (ranker.enabled): the retrieval model trained without
# the ranker's labels, the candidates, the ranker's Trainer, the chain's
# Evaluator (against retrieval alone) and the ranker's Pusher.
# Its Evaluator's baseline is retrieval alone, the model it follows.
CANDIDATE_TRAINER = "candidate_trainer"
CANDIDATE_GEN = "candidate_gen"
RANKER = Stage("ranker_trainer", "ranker_evaluator", "ranker_pusher")
# The retrieval model blessed before the newest span, on that span.
FORWARD_EVALUATOR = "forward_evaluator"
# TFX's default id of the DistributionValidator (data in spans: the newest
# span against the previous one).
DRIFT_VALIDATOR = "DistributionValidator"
# The model the retrieval Trainer warm-starts from (an Importer).
BASE_MODEL = "base_model"
# TFX's default id of the Tuner (tuner.enabled).
TUNER = "Tuner"
