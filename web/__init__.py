"""web: the HTTP/WebSocket endpoint, Channels and LiveView.

Will hold our trio server (h11 + wsproto), the Phoenix Channels and LiveView wire protocols,
signed socket tokens and Jinja2-syntax LiveView templates. Not written yet.
"""

__all__: tuple[str, ...] = ()
