"""Cross-site request forgery protection for form posts and the LiveView socket.

As ``Plug.CSRFProtection``: each browser holds a random secret in a cookie (HttpOnly, so page
scripts cannot read it, and SameSite=Lax), and each page embeds a *token* derived from that
secret and the server's key. A request that changes something (``POST``, ``PUT``, ``PATCH``,
``DELETE``) must carry a token that matches its cookie, in the form field ``_csrf_token`` or
the ``x-csrf-token`` header. Another site can make the browser send the cookie, but cannot
read the page, so it cannot know a token; nor can it mint one without the key.

Every page gets a fresh token (a random nonce and an HMAC over the cookie's secret and the
nonce), so a compressed response reveals nothing about the secret (BREACH)::

    csrf = CsrfProtection(SECRET_KEY)

    def form_page(request):
        token, cookie = csrf.token(request)
        body = f'<form method="post"><input type="hidden" name="_csrf_token" value="{token}">'
        return Response(200, body.encode(), csrf.headers(cookie, (("content-type", "text/html"),)))

    async def submit(request):
        if (refusal := csrf.check(request)) is not None:
            return refusal                               # 403 naming what was missing
        ...
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from ._cookies import set_cookie
from ._request import Request, Response

__all__ = ["CsrfProtection"]

_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_SECRET_BYTES: Final = 24


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class CsrfProtection:
    """Issues and checks CSRF tokens bound to a per-browser cookie (see the module's text).

    Two instances with the same *secret_key* and *cookie* accept each other's tokens, so a
    page rendered by LiveView and a form handled by plain HTTP share one cookie.

    >>> csrf = CsrfProtection("a secret key of at least 32 characters!!")
    """

    secret_key: str
    cookie: str = "_csrf"
    field: str = "_csrf_token"
    header: str = "x-csrf-token"
    #: Mark the cookie ``Secure`` (set it when the site is served over TLS).
    secure: bool = False

    def token(self, request: Request) -> tuple[str, tuple[str, str] | None]:
        """A fresh token for a page answering *request*, and the ``Set-Cookie`` header the
        response must carry when the browser has no CSRF cookie yet (else ``None``).

        >>> token, cookie = csrf.token(request)
        """
        secret = self._secret(request)
        cookie = None
        if secret is None:
            secret = _b64(secrets.token_bytes(_SECRET_BYTES))
            cookie = set_cookie(self.cookie, secret, secure=self.secure)
        nonce = _b64(secrets.token_bytes(12))
        return f"{nonce}.{self._mac(secret, nonce)}", cookie

    def verify(self, request: Request, token: object) -> bool:
        """Whether *token* was issued for the CSRF cookie *request* carries.

        >>> csrf.verify(request, request.form().get("_csrf_token"))
        True
        """
        secret = self._secret(request)
        if secret is None or not isinstance(token, str):
            return False
        nonce, dot, mac = token.partition(".")
        if not dot or not nonce or len(token) > 200 or not token.isascii():
            return False  # compare_digest raises on non-ASCII text: a 500 before this check
        return hmac.compare_digest(mac, self._mac(secret, nonce))

    def check(self, request: Request) -> Response | None:
        """``None`` when *request* may go on: a safe method, or an unsafe one carrying a
        valid token in the form field or header. Otherwise a 403 saying what is wrong.

        >>> if (refusal := csrf.check(request)) is not None:
        ...     return refusal
        """
        if request.method in _SAFE_METHODS:
            return None
        token = request.header(self.header)
        if token is None and _is_form(request):
            token = request.form().get(self.field)
        if self.verify(request, token):
            return None
        if self._secret(request) is None:
            why = f"no {self.cookie} cookie came with the request (are cookies blocked?)"
        elif token is None:
            why = f"the form has no {self.field} field and there is no {self.header} header"
        else:
            why = "the CSRF token does not match this browser's cookie (reload the page)"
        return Response(403, f"forbidden: invalid CSRF token: {why}\n".encode())

    def clear(self) -> tuple[str, str]:
        """A ``Set-Cookie`` header that drops the CSRF cookie (on sign-out: the next page
        starts a new secret, so tokens of the old session stop working).

        >>> headers = (csrf.clear(), ("location", "/login"))
        """
        return set_cookie(self.cookie, "", max_age=0, secure=self.secure)

    @staticmethod
    def headers(
        cookie: tuple[str, str] | None, headers: tuple[tuple[str, str], ...]
    ) -> tuple[tuple[str, str], ...]:
        """*headers* plus *cookie* when :meth:`token` asked for one.

        >>> Response(200, body, csrf.headers(cookie, (("content-type", "text/html"),)))
        """
        return headers if cookie is None else (*headers, cookie)

    def _secret(self, request: Request) -> str | None:
        value = request.cookie(self.cookie)
        return value if value and len(value) <= 64 else None

    def _mac(self, secret: str, nonce: str) -> str:
        message = f"{secret}|{nonce}".encode()
        digest = hmac.new(self.secret_key.encode(), b"csrf|" + message, hashlib.sha256)
        return _b64(digest.digest())


def _is_form(request: Request) -> bool:
    kind = (request.header("content-type") or "").split(";")[0].strip().lower()
    return kind == "application/x-www-form-urlencoded"
