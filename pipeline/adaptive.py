"""Defaults that fit the data: the settings a run leaves unset, adapted to
the shape of its data (pipeline/profile.py) before it starts.

The rules, each one printed by `recsys run` and recorded in
run_config.json (and on the run in ML Metadata) under `adapted`:

* session.max_context_length: the 80th percentile of the users' train
  histories, rounded up to a multiple of 10, between MIN_CONTEXT and
  MAX_CONTEXT: most users' whole history is one train window and their
  eval and test contexts, and short histories do not pay for unused
  positions.
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
CONTEXT_QUANTILE = 80
SAMPLED_SOFTMAX_ITEMS = 5000
SMALL_EVAL_USERS = 1000
SMALL_EVAL_PATIENCE = 10


@dataclasses.dataclass(frozen=True)
class Rule:
  """One adaptable setting: its section and name, and the value and the
  reason for a profile."""
  section: str
  name: str
  decide: Callable[[data_profile.DataProfile], Tuple[object, str]]

  @property
  def setting(self) -> str:
    return f"{self.section}.{self.name}"


def _context_length(p: data_profile.DataProfile) -> Tuple[int, str]:
  length = p.history_quantiles[CONTEXT_QUANTILE]
  value = min(MAX_CONTEXT, max(MIN_CONTEXT, -(-length // 10) * 10))
  return value, (f"p{CONTEXT_QUANTILE} of the train histories: {length} "
                 f"items; kept within {MIN_CONTEXT}..{MAX_CONTEXT}")


def _loss(p: data_profile.DataProfile) -> Tuple[str, str]:
  if p.items > SAMPLED_SOFTMAX_ITEMS:
    return "sampled_softmax", (f"{p.items:,} items > "
                               f"{SAMPLED_SOFTMAX_ITEMS:,}")
  return "softmax", f"{p.items:,} items <= {SAMPLED_SOFTMAX_ITEMS:,}"


def _patience(p: data_profile.DataProfile) -> Tuple[Optional[int], str]:
  if p.users < SMALL_EVAL_USERS:
    return SMALL_EVAL_PATIENCE, (f"{p.users:,} eval users < "
                                 f"{SMALL_EVAL_USERS:,}: a noisy eval NDCG")
  return None, f"{p.users:,} eval users"


RULES = (Rule("session", "max_context_length", _context_length),
         Rule("train", "loss", _loss),
         Rule("train", "patience", _patience))


def _given(setting: str, given: Set[str]) -> bool:
  return any(g == setting or g.startswith(setting + ".") for g in given)


def decisions(config: RunConfig, given: Set[str],
              found: data_profile.DataProfile) -> Dict[str, Tuple[object, str]]:
  """{setting: (value, reason)} for the settings the rules adapt (a rule
  that keeps the default says so with the value None)."""
  return {rule.setting: rule.decide(found) for rule in RULES
          if config.adapt and not _given(rule.setting, given)}


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
  for setting, (value, reason) in decisions(config, given, found).items():
    section, name = setting.split(".")
    if value is None:
      value = getattr(getattr(config, section), name)
      reason += ": the default"
    setattr(getattr(adapted, section), name, value)
    record[setting] = f"{value} ({reason})"
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
