"""The ``cluster`` suite: two nodes and Redis on this machine, each node its own OS process.

Figures (goals from the issue):

* one-way remote send, pipelined: a process on node A sends N messages to a registered
  process on node B with ``beam.send((name, "b"), msg)``; the clock stops when B has taken
  the last one (B tells A, one more message). Against a raw loop of the adapter's Redis
  client (:mod:`bench._cluster_raw`) publishing the same bytes (the message encoded with
  ``beam.cluster.encode_delivery``) in pipelined batches of 1,000 to a subscriber of the
  same client, which counts them and answers the same way: the engine's own limit.
  Goals: >= 0.8x the raw loop, and >= 50,000 msg/s;
* remote call round trip, p50 and p99: ``beam.call((name, "b"), request)`` from A to a
  GenServer on B, against a raw PUBLISH -> SUBSCRIBE -> PUBLISH round trip of the same client
  between the same two processes: <= 1.5x;
* channel fan-out, 2,000 clients over two nodes (half on each, the broadcast sent on one and
  carried to the other by beam's PubSub through Redis), against the same 2,000 clients on one
  node alone: the servers' CPU time (the sum over both nodes; Redis's is not counted) per
  delivered message <= 1.15x, and nothing lost (see :mod:`bench._cluster_fanout`);
* node-down detection after SIGKILL: a survivor watching a node with ``beam.monitor_node``
  measures from the kill to its ``beam.NodeDown``; goal: <= the configured timeout plus one
  heartbeat (heartbeat :data:`HEARTBEAT` s, timeout :data:`TIMEOUT` s for every node of the
  suite).

The suite starts a ``redis-server`` of its own on a free port (else it uses the Redis at
127.0.0.1:6379); the figures that use ``beam.cluster.start_pubsub`` keep to a namespace of
their own. Without Redis every figure is unavailable. A remote call that fails makes its
figures unavailable, with the error on stderr.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

from ._cluster_control import NodeError, NodeProgram, bench_redis
from ._cluster_fanout import FanoutRig
from ._cluster_node import BATCH
from ._cluster_raw import CLIENT
from ._measure import Config, Contender, Sample, log, measure
from ._report import Figure

__all__ = ["HEARTBEAT", "TIMEOUT", "run"]

#: Every node's heartbeat and timeout in this suite (seconds): small, so a drop is quick.
HEARTBEAT = 0.2
TIMEOUT = 1.0


def run(config: Config) -> list[Figure]:
    """Measure every figure of the suite."""
    with bench_redis() as url:
        if url is None:
            log("  no Redis: no redis-server binary and none at 127.0.0.1:6379")
            log("  every figure of the suite is unavailable")
            return [
                *_send_figures(config, None),
                *_call_figures(config, None),
                *_fanout_figures(config, None),
                *_down_figures(config, None),
            ]
        namespace = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
        with _pair(url, namespace) as (a, b):
            send = _send_figures(config, _one_way(config, a, b, namespace))
            call = _call_figures(config, _round_trip(config, a, b, namespace))
            down = _down_figures(config, _node_down(config, url, namespace, a))
        fanout = _fanout_figures(config, _fanout(config, url, namespace))
    return [*send, *call, *fanout, *down]


@contextlib.contextmanager
def _pair(url: str, namespace: str) -> Iterator[tuple[NodeProgram, NodeProgram]]:
    with (
        NodeProgram(url, namespace, "a", heartbeat=HEARTBEAT, timeout=TIMEOUT) as a,
        NodeProgram(url, namespace, "b", heartbeat=HEARTBEAT, timeout=TIMEOUT) as b,
    ):
        a.call("await_nodes", names=["b"])
        b.call("await_nodes", names=["a"])
        yield a, b


# -- one-way remote send -------------------------------------------------------------------


def _one_way(config: Config, a: NodeProgram, b: NodeProgram, namespace: str) -> dict[str, Sample]:
    n = config.size(30_000, 10_000, 500)
    channel, done = f"{namespace}:raw:sink", f"{namespace}:raw:done"

    def ours(count: int) -> Sample:
        b.call("sink", n=count, reply_node="a")
        return {"rate": count / a.call("blast", n=count, to="b")["seconds"]}

    def raw(count: int) -> Sample:
        b.call("raw_sink", n=count, channel=channel, done=done)
        answer = a.call("raw_blast", n=count, channel=channel, done=done)
        return {"rate": count / answer["seconds"]}

    warm = min(n, 5_000)
    return measure(
        f"one-way remote send A -> B, {n:,} messages",
        [
            Contender("beam.send", lambda: ours(n), lambda: ours(warm)),
            Contender("raw", lambda: raw(n), lambda: raw(warm)),
        ],
        config.reps,
    )


def _send_figures(config: Config, medians: dict[str, Sample] | None) -> list[Figure]:
    ours = None if medians is None else medians["beam.send"]["rate"]
    raw = None if medians is None else medians["raw"]["rate"]
    baseline = f"raw {CLIENT} PUBLISH, pipelined x{BATCH}, same bytes"
    return [
        Figure.measured(
            "one-way remote send A -> B, pipelined", ours, "msg/s", baseline, raw, ">= 0.8x"
        ),
        Figure.measured(
            "one-way remote send A -> B, absolute",
            ours,
            "msg/s",
            baseline,
            raw,
            ">= 50000 msg/s",
        ),
    ]


# -- remote call round trip ----------------------------------------------------------------


def _round_trip(
    config: Config, a: NodeProgram, b: NodeProgram, namespace: str
) -> dict[str, Sample] | None:
    n = config.size(1_000, 400, 50)
    channel, reply = f"{namespace}:raw:request", f"{namespace}:raw:reply"
    b.call("server")
    b.call("raw_echo", channel=channel, reply=reply)
    try:
        a.call("call", n=1, to="b")
    except NodeError as error:
        log(f"remote call round trip: unavailable: {error}")
        return None
    warm = min(n, 200)
    return measure(
        f"remote call round trip A -> B -> A, {n:,} calls",
        [
            Contender(
                "beam.call",
                lambda: _us(a.call("call", n=n, to="b")),
                lambda: a.call("call", n=warm, to="b"),
            ),
            Contender(
                "raw",
                lambda: _us(a.call("raw_ping", n=n, channel=channel, reply=reply)),
                lambda: a.call("raw_ping", n=warm, channel=channel, reply=reply),
            ),
        ],
        config.reps,
    )


def _us(answer: dict[str, float]) -> Sample:
    return {"p50_us": answer["p50_us"], "p99_us": answer["p99_us"]}


def _call_figures(config: Config, medians: dict[str, Sample] | None) -> list[Figure]:
    baseline = f"raw {CLIENT} PUBLISH -> SUBSCRIBE -> PUBLISH"
    figures = []
    for key, label in (("p50_us", "p50"), ("p99_us", "p99")):
        ours = None if medians is None else medians["beam.call"][key]
        raw = None if medians is None else medians["raw"][key]
        figures.append(
            Figure.measured(f"remote call round trip {label}", ours, "µs", baseline, raw, "<= 1.5x")
        )
    return figures


# -- channel fan-out over two nodes ----------------------------------------------------------


def _fanout_sizes(config: Config) -> tuple[int, int]:
    """Clients on each side, and broadcasts per burst."""
    return config.size(2_000, 1_000, 50), config.size(100, 50, 10)


def _fanout(config: Config, url: str, namespace: str) -> tuple[dict[str, Sample], int, int]:
    """The median bursts of each side, and the messages lost and sent over every burst of
    the cluster side."""
    clients, broadcasts = _fanout_sizes(config)
    interval = 0.025
    with FanoutRig(url, clients, prefix=namespace) as rig:

        def side(name: str, count: int) -> Contender:
            return Contender(
                name,
                lambda: rig.burst(name, count, interval),
                lambda: rig.burst(name, min(count, 10), interval),
            )

        medians = measure(
            f"channel fan-out to {clients:,} clients, {broadcasts} broadcasts every "
            f"{interval * 1000:.0f} ms, one node alone and two in a cluster",
            [side("solo", broadcasts), side("cluster", broadcasts)],
            min(config.reps, 3),
        )
        return (medians, *rig.lost("cluster"))


def _fanout_figures(
    config: Config, measured: tuple[dict[str, Sample], int, int] | None
) -> list[Figure]:
    clients, _ = _fanout_sizes(config)
    cluster = None if measured is None else measured[0]["cluster"]
    solo = None if measured is None else measured[0]["solo"]
    lost, sent = (None, None) if measured is None else measured[1:]
    return [
        Figure.measured(
            f"channel fan-out, {clients:,} clients on 2 nodes: server CPU per message",
            None if cluster is None else cluster["cpu_us"],
            "µs",
            f"the same {clients:,} clients on 1 node",
            None if solo is None else solo["cpu_us"],
            "<= 1.15x",
        ),
        Figure.measured(
            "channel fan-out on 2 nodes: messages lost (every burst)",
            None if lost is None else float(lost),
            "msgs",
            "messages sent",
            None if sent is None else float(sent),
            "<= 0 msgs",
        ),
    ]


# -- node-down detection -------------------------------------------------------------------


def _node_down(config: Config, url: str, namespace: str, survivor: NodeProgram) -> list[float]:
    reps = config.size(5, 3, 1)
    victims = [
        NodeProgram(url, namespace, f"down{i}", heartbeat=HEARTBEAT, timeout=TIMEOUT)
        for i in range(reps)
    ]
    seconds: list[float] = []
    try:

        def one() -> Sample:
            victim = victims[len(seconds)]
            victim.wait_ready()
            survivor.call("watch", node=victim.name)
            killed = victim.kill()
            seconds.append(survivor.call("wait_down", node=victim.name)["at"] - killed)
            return {"seconds": seconds[-1]}

        measure(
            f"node-down detection after SIGKILL, {reps} kill{'s' if reps > 1 else ''}",
            [Contender("detection", one, lambda: None)],
            reps,
        )
    finally:
        for victim in victims:
            victim.stop()
    return seconds


def _down_figures(config: Config, seconds: list[float] | None) -> list[Figure]:
    goal = f"<= {TIMEOUT + HEARTBEAT:.1f} s (timeout {TIMEOUT} + heartbeat {HEARTBEAT})"
    ordered = sorted(seconds) if seconds else None
    reps = config.size(5, 3, 1)
    return [
        Figure.measured(
            "node-down detection after SIGKILL (median)",
            None if ordered is None else ordered[len(ordered) // 2],
            "s",
            "configured timeout",
            TIMEOUT,
            goal,
        ),
        Figure.measured(
            f"node-down detection after SIGKILL (worst of {reps})",
            None if ordered is None else ordered[-1],
            "s",
            "configured timeout",
            TIMEOUT,
            goal,
        ),
    ]
