"""Running the DAG: from this process (LocalDagRunner, BeamDagRunner), compiled
for Kubeflow Pipelines, and the ML Metadata store a run uses.
"""
