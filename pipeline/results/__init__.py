"""Reading a run back from ML Metadata and its artifacts: the run summary,
`recsys runs`, `recsys report` (text and HTML).
"""
