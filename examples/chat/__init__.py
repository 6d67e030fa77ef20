"""The chat app: rooms, history, presence, typing, over LiveView and Channels.

Run it with ``scripts/example`` (or ``python -m examples.chat``): it starts on the embedded
SQLite database (a file under ``.chat-data/``; ``DATABASE_URL`` switches to PostgreSQL), seeds a
demo room and two demo users (``alice`` and ``bob``, password ``wonderland``), and prints the URL.

Only public APIs are used: ``domain`` holds the business rules (:mod:`examples.chat.model`),
``web`` serves the pages (:mod:`examples.chat.live`, :mod:`examples.chat.pages`) and the
channels non-browser clients use (:mod:`examples.chat.channels`), ``presence`` tracks who is
online, and ``beam`` runs it all as processes.
"""
