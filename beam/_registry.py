"""Registry: a local key -> process store with unique or duplicate keys, as Elixir's.

A process registers *itself* under a key (with an optional value); its entries vanish when
it exits, synchronously, before its links and monitors fire. Unique registries map a key to
at most one process and work as a name service for dynamic names (``"room:42"``); duplicate
registries map a key to many processes and work as a local pub/sub::

    rooms = beam.Registry("unique", name="rooms")
    rooms.register("room:42", {"title": "Lobby"})      # in the room's process
    pid = rooms.whereis("room:42")

    listeners = beam.Registry("duplicate")
    listeners.register("prices")                        # in each listener
    listeners.dispatch("prices", lambda entries: [beam.send(p, tick) for p, _ in entries])
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Literal

from ._errors import AlreadyRegistered
from ._node import Node, current_node, current_process
from ._types import Pid

__all__ = ["Registry"]

Keys = Literal["unique", "duplicate"]


class _Values(list[Any]):
    """Two or more values one process registered under one key. A single value is stored
    as itself (no list per entry: a registry of connections holds one entry per connection),
    so this type marks the multi-valued case apart from a value that happens to be a list."""

    __slots__ = ()


def _each(value: Any) -> list[Any] | _Values:
    return value if type(value) is _Values else [value]


class Registry:
    """A key/process registry owned by the current node; see the module docs."""

    def __init__(self, keys: Keys, *, name: str | None = None) -> None:
        if keys not in ("unique", "duplicate"):
            raise ValueError(f"Registry keys must be 'unique' or 'duplicate', got {keys!r}")
        node = current_node("beam.Registry")
        self.keys_kind: Keys = keys
        self.name = name
        self._node = node
        self._entries: dict[Hashable, dict[Pid, Any]] = {}  # value, or _Values of several
        self._by_pid: dict[Pid, list[Hashable]] = {}
        if name is not None:
            registries = _registries(node)
            if name in registries:
                raise AlreadyRegistered(f"a Registry named {name!r} already exists", None)
            registries[name] = self

    def __repr__(self) -> str:
        return f"<beam.Registry {self.keys_kind} {self.name or ''} keys={len(self._entries)}>"

    @staticmethod
    def named(name: str) -> Registry:
        """The registry created with *name* on the current node.

        >>> rooms = beam.Registry.named("rooms")
        """
        registry = _registries(current_node("beam.Registry.named")).get(name)
        if registry is None:
            raise LookupError(f"no Registry named {name!r}; create one with Registry(keys, name=)")
        return registry

    def register(self, key: Hashable, value: Any = None) -> None:
        """Register the calling process under *key* with *value*.

        In a unique registry a key held by another live process raises
        :class:`AlreadyRegistered` (its ``pid`` is the holder).

        >>> rooms.register("room:42", {"title": "Lobby"})
        """
        proc = current_process("Registry.register")
        pid = proc.pid
        holders = self._entries.get(key)
        if self.keys_kind == "unique" and holders:
            (holder,) = holders
            raise AlreadyRegistered(
                f"key {key!r} is already registered to {holder} in {self!r}", holder
            )
        if holders is None:
            holders = self._entries[key] = {}
        if pid not in holders:
            holders[pid] = value
        else:
            held = holders[pid]
            holders[pid] = _Values((*_each(held), value))
        keys = self._by_pid.get(pid)
        if keys is None:
            keys = self._by_pid[pid] = []
            if proc.cleanups is None:
                proc.cleanups = []
            proc.cleanups.append(self._forget)
        keys.append(key)

    def unregister(self, key: Hashable) -> None:
        """Remove every entry of the calling process under *key*.

        >>> rooms.unregister("room:42")
        """
        pid = current_process("Registry.unregister").pid
        holders = self._entries.get(key)
        if holders is not None and pid in holders:
            del holders[pid]
            if not holders:
                del self._entries[key]
            keys = self._by_pid.get(pid, [])
            self._by_pid[pid] = [k for k in keys if k != key]

    def lookup(self, key: Hashable) -> list[tuple[Pid, Any]]:
        """Every ``(pid, value)`` registered under *key*.

        >>> [(pid, meta)] = rooms.lookup("room:42")
        """
        holders = self._entries.get(key)
        if not holders:
            return []
        return [(pid, value) for pid, held in holders.items() for value in _each(held)]

    def whereis(self, key: Hashable) -> Pid | None:
        """The process registered under *key* in a unique registry, else ``None``.

        >>> pid = rooms.whereis("room:42")
        """
        holders = self._entries.get(key)
        return next(iter(holders)) if holders else None

    def keys(self, pid: Pid) -> list[Hashable]:
        """The keys *pid* is registered under.

        >>> rooms.keys(beam.self())
        """
        return list(self._by_pid.get(pid, ()))

    def count_key(self, key: Hashable) -> int:
        """How many processes are registered under *key* (each counted once, however many
        values it registered), in constant time.

        >>> connections.count_key(("address", "10.0.0.7"))
        """
        holders = self._entries.get(key)
        return 0 if holders is None else len(holders)

    def count(self) -> int:
        """The number of entries.

        >>> rooms.count()
        """
        return sum(len(_each(v)) for holders in self._entries.values() for v in holders.values())

    def dispatch(self, key: Hashable, fn: Callable[[list[tuple[Pid, Any]]], object]) -> None:
        """Call ``fn(entries)`` in the caller with the entries under *key* (if any).

        >>> listeners.dispatch("prices", lambda es: [beam.send(p, 1.5) for p, _ in es])
        """
        entries = self.lookup(key)
        if entries:
            fn(entries)

    def _forget(self, pid: Pid) -> None:
        for key in self._by_pid.pop(pid, ()):
            holders = self._entries.get(key)
            if holders is not None:
                holders.pop(pid, None)
                if not holders:
                    del self._entries[key]


def _registries(node: Node) -> dict[str, Registry]:
    return node._registries
