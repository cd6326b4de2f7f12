"""Merging worker snapshots is arithmetic on plain dicts: checked without processes."""

from streams.scale.merge import empty_stream, merge_snapshots


def stream(sid, state="live", **counters):
    return {
        "stream": sid,
        "state": state,
        "fps": 25.0,
        "p50_ms": 10.0,
        "p99_ms": 20.0,
        "decoded": 0,
        "processed": 0,
        "dropped": 0,
        "reconnects": 0,
        **counters,
    }


def pipeline(batches, mean_batch, p50, published=0, dropped=0):
    return {
        "batches": batches,
        "mean_batch": mean_batch,
        "inference_p50_ms": p50,
        "published": published,
        "publish_dropped": dropped,
    }


def test_streams_in_config_order_with_counters_carried_over_dead_workers():
    snapshots = [
        {"streams": [stream("b", processed=10)], "pipeline": pipeline(10, 1.0, 4.0, 12, 1)},
        {"streams": [stream("a", processed=7, decoded=9)], "pipeline": pipeline(5, 2.0, 6.0, 8, 0)},
        {},  # a worker that died and has not reported since its restart
    ]
    merged = merge_snapshots(
        ["a", "b", "c"],
        snapshots,
        {"a": "live", "b": "live", "c": "reconnecting"},
        {"a": {"processed": 100, "decoded": 100, "dropped": 0, "reconnects": 1}},
        {"published": 3, "publish_dropped": 2},
        restarts=1,
        processes=3,
        uptime_s=9.5,
    )
    rows = merged["streams"]
    assert [r["stream"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["processed"] == 107 and rows[0]["decoded"] == 109 and rows[0]["reconnects"] == 1
    assert rows[2] == {**empty_stream("c"), "state": "reconnecting"}
    p = merged["pipeline"]
    assert p["batches"] == 15 and p["mean_batch"] == round((10 * 1.0 + 5 * 2.0) / 15, 2)
    assert p["inference_p50_ms"] == 6.0  # the median of the workers' medians (upper of two)
    assert (p["published"], p["publish_dropped"]) == (23, 3)
    assert (p["processes"], p["restarts"], merged["uptime_s"]) == (3, 1, 9.5)


def test_before_any_report_every_stream_is_starting():
    merged = merge_snapshots(
        ["a"], [{}], {"a": "starting"}, {}, {"published": 0, "publish_dropped": 0}, 0, 1, 0.0
    )
    assert merged["streams"][0]["state"] == "starting"
    assert merged["pipeline"]["batches"] == 0 and merged["pipeline"]["mean_batch"] == 0.0
    assert merged["pipeline"]["inference_p50_ms"] is None
