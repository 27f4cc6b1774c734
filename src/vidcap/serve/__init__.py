"""``vidcap serve``: a finetuned bundle loaded once and called over HTTP (FastAPI + uvicorn).

- :mod:`vidcap.serve.app`: the endpoints (``/v1/caption``, ``/v1/answer``, ``/v1/summarize``,
  ``/v1/model``, ``/healthz``, ``/`` the page to drop a video and watch it with its captions) and the
  mapping of errors to JSON answers with one sentence.
- :mod:`vidcap.serve.uploads`: the request body streamed to a private temporary folder, its size
  limit enforced while it arrives; paths on the server only inside ``--allow-paths``.
- :mod:`vidcap.serve.worker`: the one thread that runs the model, and its bounded queue.

FastAPI, fastapi-offline (the API docs' pages without a CDN), uvicorn and python-multipart come with
the ``serve`` extra (``pip install 'vidcap[serve]'``).
"""
