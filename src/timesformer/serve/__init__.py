"""``timesformer serve``: an HTTP API and a web page for predictions, window timelines and
attention maps, on FastAPI and uvicorn (the optional extra ``timesformer[serve]``).

- ``settings``: ``ServeSettings``, what the command line passes, checked (standard library only).
- ``model``: ``load_model`` loads the checkpoint as ``timesformer predict`` does
  (``inference.predictor.load_predictor``).
- ``batching``: ``Gate`` bounds the requests in progress (503 + Retry-After beyond it);
  ``Batcher`` runs the model on one thread, merging the views of concurrent requests.
- ``jobs``: one request's work in its own thread: a prediction or a rollout picture.
- ``uploads``: a request's video, an upload streamed to a file or a path on the server.
- ``paths``: which paths on the server a client may name (inside ``--allow-dir`` only).
- ``options``: a request's options read as numbers and yes/no values.
- ``errors``: the 4xx/503 answers, each a status, a code and a message.
- ``access``: one log line per request with its duration.
- ``app``: ``create_app`` wires them into the FastAPI application; ``static/`` is the page.

The modules here import fastapi and torch; ``timesformer.cli.serve`` imports them only when it
runs, so that ``timesformer --help`` stays light and says how to install the extra.
"""

from __future__ import annotations
