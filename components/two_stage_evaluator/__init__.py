"""TwoStageEvaluator: retrieval alone vs retrieval re-ordered by the rating
model.
"""
