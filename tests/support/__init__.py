"""Helpers that several test packages share; no test module imports another test module.

- :mod:`.wsclient`: a WebSocket client on wsproto; :mod:`.phx`: a Phoenix V2 client on it.
- :mod:`.http`: raw HTTP/1.1 requests (:func:`~.http.http`, :func:`~.http.fetch` with the
  ``Set-Cookie`` headers) and a cookie jar.
- :mod:`.jsclient`: Node and the official npm clients, and running a Node script whose
  facts come back one JSON line each; ``js/steps.cjs`` is what those scripts share.
- :mod:`.browser`: headless Chromium driven by Playwright, from a worker thread.
- :mod:`.liveviews`: the LiveViews the LiveView tests serve.
- :mod:`.chat`: the example chat, served and driven as its clients do.
- :mod:`.backends`: the SQLite and PostgreSQL ``backend`` fixture.

A helper used by one test package only stays there (``tests/web/rooms.py``,
``tests/presence/model.py``, ``tests/security/http_app.py``).
"""
