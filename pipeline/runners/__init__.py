"""Running the DAG: from this process (LocalDagRunner, BeamDagRunner), or
compiled for Kubeflow Pipelines.
"""
