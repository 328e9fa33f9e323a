"""Context encoders: one causal encoding per position, padding that never
matters, the newest position, order sensitivity."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.lib.feature_config import SEQUENCE_ENCODERS
from components.lib.settings import ModelConfig
from components.model.context_encoders import build_context_encoder
from components.model.context_encoders import masked_mean

LENGTH, DIM = 6, 8
MODEL = ModelConfig(dropout=0.1, cnn_filters=8, cnn_kernel_size=2,
                    cnn_layers=2, rnn_units=8, attention_units=8,
                    attention_heads=2)


def encoder(name):
  keras.utils.set_random_seed(1)
  return build_context_encoder(name, LENGTH, MODEL)


def sequence_and_mask(real):
  """A random [2, LENGTH, DIM] sequence whose rows have `real` items."""
  sequence = tf.random.stateless_normal([2, LENGTH, DIM], seed=[1, 2])
  mask = tf.constant([[i < r for i in range(LENGTH)] for r in real])
  return sequence, mask


@pytest.mark.parametrize("name", SEQUENCE_ENCODERS)
def test_encoders_give_one_encoding_per_position(name):
  sequence, mask = sequence_and_mask([4, 6])
  out = encoder(name)(sequence, mask)
  assert out.shape[:2] == (2, LENGTH)
  assert np.all(np.isfinite(out.numpy()))


@pytest.mark.parametrize("name", SEQUENCE_ENCODERS)
def test_padding_never_changes_real_positions(name):
  layer = encoder(name)
  sequence, mask = sequence_and_mask([4, 4])
  # Same real items, different garbage in the padded positions.
  noisy = tf.concat([sequence[:, :4], 100.0 + sequence[:, 4:]], axis=1)
  np.testing.assert_allclose(layer(sequence, mask)[:, :4],
                             layer(noisy, mask)[:, :4], atol=1e-5)


@pytest.mark.parametrize("name", SEQUENCE_ENCODERS)
def test_encoders_are_causal(name):
  layer = encoder(name)
  sequence, mask = sequence_and_mask([6, 6])
  changed = tf.concat([sequence[:, :3], sequence[:, 3:] * -2.0], axis=1)
  before, after = layer(sequence, mask), layer(changed, mask)
  np.testing.assert_allclose(before[:, :3], after[:, :3], atol=1e-5)
  assert not np.allclose(before[:, 3:], after[:, 3:])


@pytest.mark.parametrize("name", SEQUENCE_ENCODERS)
def test_newest_is_the_newest_position_of_the_whole_encoding(name):
  layer = encoder(name)
  sequence, mask = sequence_and_mask([3, 6])
  whole = layer(sequence, mask).numpy()
  np.testing.assert_allclose(layer.newest(sequence, mask),
                             whole[[0, 1], [2, 5]], atol=1e-5)


@pytest.mark.parametrize("name, sensitive", [
    ("bow", False), ("cnn", True), ("lstm", True), ("gru", True),
    ("attention", True)])
def test_order_sensitivity(name, sensitive):
  layer = encoder(name)
  sequence, mask = sequence_and_mask([4, 4])
  swapped = tf.concat([sequence[:, 1:2], sequence[:, 0:1], sequence[:, 2:]],
                      axis=1)
  # The encoding after the newest item (position 3) of the same four items.
  same = np.allclose(layer(sequence, mask)[:, 3], layer(swapped, mask)[:, 3],
                     atol=1e-5)
  assert same != sensitive


def test_unknown_encoder_name_is_an_error():
  with pytest.raises(ValueError, match="unknown context encoder 'rnn9'"):
    build_context_encoder("rnn9", LENGTH, MODEL)


def test_masked_mean_ignores_padding_and_handles_empty():
  sequence = tf.constant([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                          [[5.0, 5.0], [7.0, 7.0], [9.0, 9.0]]])
  mask = tf.constant([[True, True, False], [False, False, False]])
  np.testing.assert_allclose(masked_mean(sequence, mask),
                             [[2.0, 3.0], [0.0, 0.0]])


@pytest.mark.parametrize("name", ["attention", "bow"])
def test_a_context_window_reads_only_the_most_recent_items(name):
  """With context_window 2 a position is what the encoder gives the last
  two items alone (attention: one block, whose window is the receptive
  field)."""
  config = dataclasses.replace(MODEL, context_window=2, attention_layers=1,
                               dropout=0.0)
  keras.utils.set_random_seed(1)
  layer = build_context_encoder(name, LENGTH, config)
  sequence, mask = sequence_and_mask([5, 6])
  windowed = layer(sequence, mask).numpy()
  changed = tf.concat([sequence[:, :2] * -3.0, sequence[:, 2:]], axis=1)
  # Items 0 and 1 are outside the window of positions 3 and later.
  np.testing.assert_allclose(layer(changed, mask)[:, 3:5], windowed[:, 3:5],
                             atol=1e-5)
  assert not np.allclose(layer(changed, mask)[:, 2], windowed[:, 2])
  np.testing.assert_allclose(layer.newest(sequence, mask),
                             windowed[[0, 1], [4, 5]], atol=1e-5)
  if name == "bow":  # the mean of the two most recent items
    np.testing.assert_allclose(windowed[:, 4],
                               (sequence[:, 3] + sequence[:, 4]) / 2,
                               atol=1e-5)
