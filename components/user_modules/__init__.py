"""Code that stock TFX components import by module path: Transform's
preprocessing_fn, the two Trainers' run_fn, the Evaluator's TFMA metrics and
EvalConfigs.
"""
