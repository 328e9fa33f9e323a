"""What a trained model ships as: SavedModel signatures (retrieval, rating) and
their TFLite conversion and on-device call.
"""
