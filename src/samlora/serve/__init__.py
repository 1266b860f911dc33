"""serve: ``samlora serve``, one base model with many adapters behind an HTTP API and a page.

``settings`` holds the server's limits; ``schema`` the request and response of ``POST /predict``
and the check of prompts against an image; ``upload`` reads images from requests; ``cache`` the
LRU of encoded images per (image, adapter); ``engine`` answers requests under the model lock;
``app`` is the FastAPI app (routes, errors as JSON, one log line per request) and ``page/`` the
browser page it serves; ``server`` runs it on uvicorn. Needs the ``serve`` extra (FastAPI,
uvicorn, python-multipart), imported only by ``samlora serve`` itself.
"""
