"""Plain libraries the TFX steps share: feature names and id layout, the
feature config, the run settings the steps consume, each data set's raw
formats and session layout, evaluation slices, the Beam line source and disk
grouping, and the names of the files the steps write.
"""
