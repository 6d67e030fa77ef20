"""The LiveView wire protocol's names: the keys of rendered trees and diffs, and the events and
reply keys on an ``lv:<id>`` topic, as the official ``phoenix_live_view`` client (1.2) reads
them. Every module of :mod:`web.live` spells them through these constants.

A *rendered tree* (the join reply's ``rendered``) is a JSON object: :data:`STATICS` holds the
N+1 static strings around N dynamics, which sit under the keys ``"0"`` .. ``"N-1"`` (each a
string, a nested tree, a comprehension, or an integer naming a live component); a *diff* has
the same shape with only what changed (a node carrying :data:`STATICS` replaces the old one)::

    >>> tree = {STATICS: ["<p>", "</p>"], "0": "1"}
    >>> tree
    {'s': ['<p>', '</p>'], '0': '1'}

A *comprehension* (a ``{% for %}`` loop) is ``{"s": [...], "k": {"0": {...}, ..., "kc": n}}``:
the entries under :data:`KEYED` share the comprehension's statics. A loop over a stream adds
:data:`STREAM`. Only the root of a reply or push carries :data:`COMPONENTS`, :data:`TITLE` and
:data:`EVENTS`.

Not sent by this server: ``"p"`` (a table of shared statics, which the client resolves per
message; we always send statics inline) and ``"r"`` at the top level of a diff (a hook's
``pushEvent`` reply; inside a node ``"r"`` is the root flag, :data:`ROOT`).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALLOW_UPLOAD",
    "CIDS",
    "CIDS_DESTROYED",
    "CIDS_WILL_DESTROY",
    "COMPONENTS",
    "DIFF",
    "EVENT",
    "EVENTS",
    "KEYED",
    "KEYED_COUNT",
    "KEYED_MOVES",
    "LIVE_PATCH",
    "LIVE_REDIRECT",
    "PROGRESS",
    "REDIRECT",
    "RENDERED",
    "ROOT",
    "STATICS",
    "STREAM",
    "TITLE",
    "VERSION",
]

# -- rendered trees and diffs ------------------------------------------------------------------

#: A node's static strings, one more than its dynamics. A node in a diff that carries them
#: replaces the client's node; one without them is merged into it key by key.
STATICS: Final = "s"
#: ``1`` on a node whose template has a single root element: required on every live
#: component's tree (the client marks that root ``data-phx-component``).
ROOT: Final = "r"
#: At the root: the live components' trees and diffs, by cid (a string); in the parent's tree
#: a component is its cid, an integer.
COMPONENTS: Final = "c"
#: At the root: the new page title (the ``page_title`` assign).
TITLE: Final = "t"
#: At the root: the events of ``socket.push_event``, ``[[name, payload], ...]``, dispatched to
#: hooks' ``handleEvent`` and as ``phx:<name>`` window events.
EVENTS: Final = "e"
#: A comprehension's entries by index (``"0"``, ``"1"``, ...), each the dynamics of one entry
#: (a diff: only changed or new entries; an integer or ``[old_index, diff]``: a move).
KEYED: Final = "k"
#: Inside :data:`KEYED`: the comprehension's entry count (entries at or above it are dropped).
KEYED_COUNT: Final = "kc"
#: Inside :data:`KEYED`: ``true`` when the diff moves entries (the client snapshots the old
#: entries only then).
KEYED_MOVES: Final = "km"
#: On a comprehension over a stream: ``[ref, [[dom_id, at, limit, update_only], ...],
#: [deleted dom_id, ...](, reset)]``; its :data:`KEYED` entries are only the new inserts.
STREAM: Final = "stream"

# -- events on lv:<id>, and reply keys ---------------------------------------------------------

#: Client -> server: a ``phx-*`` binding fired (``{"type", "event", "value", "cid"?, ...}``).
EVENT: Final = "event"
#: Client -> server: the URL changed within the view (``{"url"}``); server -> client (a push,
#: or a reply key): change the URL without leaving the view (``{"to", "kind"}``).
LIVE_PATCH: Final = "live_patch"
#: Client -> server: these components are about to leave the DOM (``{"cids"}``).
CIDS_WILL_DESTROY: Final = "cids_will_destroy"
#: Client -> server: these components left the DOM (``{"cids"}``); the reply lists the ones
#: the server forgot under :data:`CIDS`.
CIDS_DESTROYED: Final = "cids_destroyed"
#: Server -> client, a push or a reply key: a diff of the view's rendered tree.
DIFF: Final = "diff"
#: Server -> client (a push, a reply key, or a join error): navigate to another LiveView over
#: the same connection (``{"to", "kind"}``).
LIVE_REDIRECT: Final = "live_redirect"
#: Server -> client (a push, a reply key, or a join error): leave with a full page load
#: (``{"to"}``).
REDIRECT: Final = "redirect"
#: The join reply's full rendered tree.
RENDERED: Final = "rendered"
#: The join reply's server version (the client only warns on a mismatch).
VERSION: Final = "liveview_version"
#: The ``cids_destroyed`` reply's components that were forgotten.
CIDS: Final = "cids"
#: Client -> server: may these picked files be uploaded (``{"ref", "entries"}``)? The reply
#: carries a token per entry (or the errors), the client then joins ``lvu:<entry ref>``.
ALLOW_UPLOAD: Final = "allow_upload"
#: Client -> server: an upload entry's progress (``{"ref", "entry_ref", "progress"}``).
PROGRESS: Final = "progress"
