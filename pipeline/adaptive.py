"""Defaults that fit the data: the settings a run leaves unset, adapted to
the shape of its data (pipeline/profile.py) before it starts.

The rules, each one printed by `recsys run` and recorded in
run_config.json (and on the run in ML Metadata) under `adapted`:

* session.max_context_length: the 80th percentile of the users' train
  histories, rounded up to a multiple of 10, between MIN_CONTEXT and
  MAX_CONTEXT: most users' whole history is one train window and their
  eval and test contexts, and short histories do not pay for unused
  positions.
* train.batch_size: TOKENS_PER_BATCH items of train windows per batch
  (64 sequences of 50, the shape the encoders were tuned at), a multiple of
  8 between MIN_BATCH and MAX_BATCH: a step costs about the same at every
  context length, and long windows still get enough steps per epoch (ML-1M
  subset, context 200, 20 minutes: eval NDCG@10 0.190 at batch 16 against
  0.175 at batch 64 after 30 epochs of equal time).
* train.loss: the full softmax up to SAMPLED_SOFTMAX_ITEMS items, above
  that the sampled softmax with logQ correction (train.num_negatives per
  batch): scoring every item for every prediction dominates an epoch on a
  large catalog.
* train.patience: SMALL_EVAL_PATIENCE epochs when fewer than
  SMALL_EVAL_USERS users are evaluated (one eval target each: the eval
  NDCG@10 that early stopping watches is noisy, and a noise dip must not
  end training), else the default.

A setting the config file, --set or a command-line option gives is never
adapted; `adapt=false` turns all of it off.
"""
import dataclasses
from typing import Callable, Dict, List, Optional, Set, Tuple

from pipeline import profile as data_profile
from pipeline.config import ADAPTED, RunConfig, from_json

MIN_CONTEXT, MAX_CONTEXT = 10, 200
TOKENS_PER_BATCH = 64 * 50
MIN_BATCH, MAX_BATCH = 16, 64
CONTEXT_QUANTILE = 80
SAMPLED_SOFTMAX_ITEMS = 5000
SMALL_EVAL_USERS = 1000
SMALL_EVAL_PATIENCE = 10


@dataclasses.dataclass(frozen=True)
class Rule:
  """One adaptable setting: its section and name, and the value and the
  reason for a profile and the config the rules before it adapted."""
  section: str
  name: str
  decide: Callable[[data_profile.DataProfile, RunConfig], Tuple[object, str]]

  @property
  def setting(self) -> str:
    return f"{self.section}.{self.name}"


def _context_length(p: data_profile.DataProfile, _: RunConfig) -> Tuple[int, str]:
  length = p.history_quantiles[CONTEXT_QUANTILE]
  value = min(MAX_CONTEXT, max(MIN_CONTEXT, -(-length // 10) * 10))
  return value, (f"p{CONTEXT_QUANTILE} of the train histories: {length} "
                 f"items; kept within {MIN_CONTEXT}..{MAX_CONTEXT}")


def _batch_size(_: data_profile.DataProfile, config: RunConfig
                ) -> Tuple[int, str]:
  length = config.session.max_context_length
  value = min(MAX_BATCH, max(MIN_BATCH, round(TOKENS_PER_BATCH / length / 8)
                             * 8))
  return value, (f"{TOKENS_PER_BATCH:,} items per batch at a context of "
                 f"{length}; kept within {MIN_BATCH}..{MAX_BATCH}")


def _loss(p: data_profile.DataProfile, _: RunConfig) -> Tuple[str, str]:
  if p.items > SAMPLED_SOFTMAX_ITEMS:
    return "sampled_softmax", (f"{p.items:,} items > "
                               f"{SAMPLED_SOFTMAX_ITEMS:,}")
  return "softmax", f"{p.items:,} items <= {SAMPLED_SOFTMAX_ITEMS:,}"


def _patience(p: data_profile.DataProfile, _: RunConfig
              ) -> Tuple[Optional[int], str]:
  if p.users < SMALL_EVAL_USERS:
    return SMALL_EVAL_PATIENCE, (f"{p.users:,} eval users < "
                                 f"{SMALL_EVAL_USERS:,}: a noisy eval NDCG")
  return None, f"{p.users:,} eval users"


# In order: a rule reads the settings the rules before it adapted.
RULES = (Rule("session", "max_context_length", _context_length),
         Rule("train", "batch_size", _batch_size),
         Rule("train", "loss", _loss),
         Rule("train", "patience", _patience))


def _given(setting: str, given: Set[str]) -> bool:
  return any(g == setting or g.startswith(setting + ".") for g in given)


def adapt(config: RunConfig, given: Set[str],
          found: Optional[data_profile.DataProfile] = None) -> RunConfig:
  """A copy of `config` with the rules applied to the settings not in
  `given`, and what they decided recorded in `adapted`. `found` is the
  data's profile (read from data.data_dir when not given)."""
  if not config.adapt or all(_given(r.setting, given) for r in RULES):
    return config
  found = found or data_profile.profile(config.data, config.session)
  adapted = from_json(config.to_json())
  record = {"data": found.describe()}
  for rule in RULES:
    if _given(rule.setting, given):
      continue
    value, reason = rule.decide(found, adapted)
    if value is None:
      value = getattr(getattr(config, rule.section), rule.name)
      reason += ": the default"
    setattr(getattr(adapted, rule.section), rule.name, value)
    record[rule.setting] = f"{value} ({reason})"
  setattr(adapted, ADAPTED, record)
  adapted.validate()
  return adapted


def describe(config: RunConfig) -> List[str]:
  """The recorded decisions as console lines."""
  record = dict(getattr(config, ADAPTED))
  if not record:
    return []
  lines = [f"adapted to the data ({record.pop('data')}):"]
  return lines + [f"  {setting} = {why}" for setting, why in record.items()]
