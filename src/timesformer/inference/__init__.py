"""Inference for users: predictions on video files, long videos, features, attention maps, export.

- ``predictor``: ``Predictor`` runs the reference test protocol (short side to the crop size,
  K clips x 3 crops) on video files and returns the top-k classes with probabilities;
  ``load_predictor`` builds it from a checkpoint and the options of ``predict`` and ``serve``.
- ``windows``: the clip slid over a long video decoded as one stream; a timeline plot.
- ``results``: ``Prediction`` and ``WindowPrediction``, what ``predictor`` and ``windows`` return.
- ``rollout`` and ``overlay``: attention rollout for every scheme, drawn over the frames;
  ``rollout_clip``: the centred clip it explains (``explain`` and ``serve`` read it alike).
- ``export``: ONNX, TorchScript and Hugging Face exports checked against the model.
- ``labels``: the Kinetics-400/600 and SSv2 class names.

The submodules are imported on use, so ``import timesformer`` stays light. None imports the
training engine: what both use (device, precision, the inference copy) is ``timesformer.runtime``.
"""

from __future__ import annotations
