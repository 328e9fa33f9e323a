"""ForwardEvaluator: the model pushed before the newest span arrived,
evaluated on that span's interactions (data in spans)."""
