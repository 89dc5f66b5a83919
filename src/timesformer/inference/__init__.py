"""Inference for users: predictions on video files, long videos, features, attention maps, export.

``Predictor`` runs the reference test protocol (short side to the crop size, K clips x 3 crops) on
video files and returns the top-k classes with probabilities.
"""

from __future__ import annotations
