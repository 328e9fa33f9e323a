"""The dual-encoder recommender: context encoder x label encoder, dot product.

AutoGraph skips the `keras` and `tensorflow` packages but not `tf_keras`, the
same Keras 2 code under a new name: left alone it transpiles all of tf_keras
on the first trace of every process (about 20 s per train/test function on
this machine). Keras 2 code never needed conversion, so it is skipped here,
the same way TensorFlow's own tests add rules.
"""
from tensorflow.python.autograph.core import config as _autograph_config  # pylint: disable=g-direct-tensorflow-import

_TF_KERAS_RULE = _autograph_config.DoNotConvert("tf_keras")
if not any(str(rule) == str(_TF_KERAS_RULE)
           for rule in _autograph_config.CONVERSION_RULES):
  _autograph_config.CONVERSION_RULES = (
      (_TF_KERAS_RULE,) + tuple(_autograph_config.CONVERSION_RULES))
