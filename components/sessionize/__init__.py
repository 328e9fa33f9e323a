"""Sessionize: per-user timelines -> next-item examples in leave-last-out
splits.
"""
