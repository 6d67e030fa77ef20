"""The chat app: rooms, history, presence, typing, over LiveView and Channels.

Run it with ``scripts/example`` (``python -m examples.chat --demo``): it starts on the
embedded SQLite database (a file under ``.chat-data/``; ``DATABASE_URL`` switches to
PostgreSQL), seeds demo rooms and two demo users (``alice``, an admin, and ``bob``, password
``wonderland``: demo mode only), and prints the URL. Without ``--demo`` the admin's account
comes from ``CHAT_ADMIN_USERNAME`` and ``CHAT_ADMIN_PASSWORD``. What it protects, and how: the
README's "Security" section.

Only public APIs are used: ``domain`` holds the business rules (:mod:`examples.chat.model`),
``web`` serves the pages (:mod:`examples.chat.live`, :mod:`examples.chat.pages`) and the
channels non-browser clients use (:mod:`examples.chat.channels`), ``presence`` tracks who is
online, and ``beam`` runs it all as processes.
"""
