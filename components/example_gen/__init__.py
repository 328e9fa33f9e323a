"""This project's ExampleGens for raw data-set files: the shared base
(component.py, executor.py) and one folder per data set.
"""
