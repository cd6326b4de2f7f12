"""The publisher with real ZeroMQ sockets: slow subscribers never slow anyone down."""

import time

import zmq

from streams.bus.messages import topic
from streams.config import PublishConfig
from streams.runtime.stats import PipelineStats
from tests.helpers import Collector, free_port

MESSAGES = 20_000


def test_stalled_subscriber_does_not_block_publisher_or_other_subscribers():
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    stats = PipelineStats()
    from streams.bus.publisher import Publisher

    publisher = Publisher(
        PublishConfig(endpoint=endpoint, sndhwm=1000, queue_size=100_000, join_grace_ms=0), stats
    )
    # A subscriber that connects, subscribes and never reads, with tiny buffers.
    stalled = zmq.Context.instance().socket(zmq.SUB)
    stalled.setsockopt(zmq.RCVHWM, 10)
    stalled.setsockopt(zmq.RCVBUF, 4096)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")
    stalled.connect(endpoint)
    healthy = Collector(endpoint, kinds=("det",))
    try:
        padding = "x" * 500  # ~0.6 kB messages: the stalled peer's buffers fill quickly
        slowest_call_s = 0.0
        for seq in range(MESSAGES):
            began = time.monotonic()
            publisher.publish(topic("det", "cam1"), {"type": "det", "seq": seq, "pad": padding})
            slowest_call_s = max(slowest_call_s, time.monotonic() - began)
            if seq % 100 == 99:
                time.sleep(0.02)  # ~5000 messages/s: a busy camera farm
        assert healthy.wait_for(lambda c: len(c.messages) >= MESSAGES, 30)
    finally:
        healthy.close()
        publisher.close()
    stalled_got = 0
    while stalled.poll(0):
        stalled.recv_multipart()
        stalled_got += 1
    stalled.close(0)
    seqs = [m["seq"] for _, m in healthy.messages]
    print(
        f"healthy {len(seqs)}, stalled {stalled_got} of {MESSAGES}, slowest call "
        f"{slowest_call_s * 1000:.2f} ms"
    )
    assert seqs == list(range(MESSAGES)), "the healthy subscriber got every message, in order"
    assert slowest_call_s < 0.25, "publish() never waited for the stalled subscriber"
    assert stalled_got < MESSAGES // 2, "the stalled subscriber was cut off at its high-water mark"
    assert stats.published == MESSAGES


def test_full_queue_drops_and_counts_instead_of_blocking():
    stats = PipelineStats()
    from streams.bus.publisher import Publisher

    publisher = Publisher(
        PublishConfig(endpoint=f"tcp://127.0.0.1:{free_port()}", queue_size=1, join_grace_ms=0),
        stats,
    )
    try:
        started = time.monotonic()
        results = [
            publisher.publish("det/a/", {"seq": i, "pad": "x" * 10_000}) for i in range(2000)
        ]
        assert time.monotonic() - started < 2.0
    finally:
        publisher.close()
    assert results.count(False) == stats.publish_dropped > 0


def test_address_in_use_is_a_publish_error():
    import pytest

    from streams.bus.publisher import Publisher
    from streams.errors import PublishError

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    first = Publisher(PublishConfig(endpoint=endpoint, join_grace_ms=0), PipelineStats())
    try:
        with pytest.raises(PublishError, match="publish.endpoint: cannot bind"):
            Publisher(PublishConfig(endpoint=endpoint, join_grace_ms=0), PipelineStats())
    finally:
        first.close()


def test_a_batch_is_one_item_sent_in_order_and_close_flushes_it():
    from streams.bus.messages import topic_bytes
    from streams.bus.publisher import Publisher

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    stats = PipelineStats()
    publisher = Publisher(PublishConfig(endpoint=endpoint, join_grace_ms=0), stats)
    collector = Collector(endpoint, kinds=("det",))
    try:
        batches = [
            [
                (topic_bytes("det", f"cam{i % 4}"), b'{"type":"det","seq":%d}' % (32 * b + i))
                for i in range(32)
            ]
            for b in range(20)
        ]
        assert [publisher.publish_encoded(batch) for batch in batches] == [32] * 20
        publisher.close()  # right away: the queued batches still go out
        assert collector.wait_for(lambda c: len(c.messages) >= 640, 10)
    finally:
        collector.close()
    assert [m["seq"] for _, m in collector.messages] == list(range(640))
    assert [t for t, _ in collector.messages[:4]] == [
        b"det/cam0/",
        b"det/cam1/",
        b"det/cam2/",
        b"det/cam3/",
    ]
    assert stats.published == 640 and stats.publish_dropped == 0


def test_the_queue_bound_counts_messages_not_batches():
    from streams.bus.publisher import Publisher

    stats = PipelineStats()
    publisher = Publisher(
        PublishConfig(endpoint=f"tcp://127.0.0.1:{free_port()}", queue_size=10, join_grace_ms=0),
        stats,
    )
    try:
        assert publisher.publish_encoded([(b"det/a/", b"{}")] * 25) == 10
        assert stats.publish_dropped == 15
        assert publisher.publish("det/a/", {"bad": object()}) is False  # cannot be encoded
        assert stats.publish_dropped == 16
    finally:
        publisher.close()
    assert stats.published + stats.publish_dropped == 26
