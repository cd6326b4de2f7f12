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


def pipeline(batches, mean_batch, p50, published=0, dropped=0, nvdec=0):
    return {
        "batches": batches,
        "mean_batch": mean_batch,
        "inference_p50_ms": p50,
        "published": published,
        "publish_dropped": dropped,
        "nvdec_sessions": nvdec,
    }


def test_streams_in_config_order_with_counters_carried_over_dead_workers():
    snapshots = [
        {"streams": [stream("b", processed=10)], "pipeline": pipeline(10, 1.0, 4.0, 12, 1, 3)},
        {
            "streams": [stream("a", processed=7, decoded=9)],
            "pipeline": pipeline(5, 2.0, 6.0, 8, 0, 2),
        },
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
    assert p["nvdec_sessions"] == 5  # every live worker's open decoders
    assert (p["processes"], p["restarts"], merged["uptime_s"]) == (3, 1, 9.5)


def test_before_any_report_every_stream_is_starting():
    merged = merge_snapshots(
        ["a"], [{}], {"a": "starting"}, {}, {"published": 0, "publish_dropped": 0}, 0, 1, 0.0
    )
    assert merged["streams"][0]["state"] == "starting"
    assert merged["pipeline"]["batches"] == 0 and merged["pipeline"]["mean_batch"] == 0.0
    assert merged["pipeline"]["inference_p50_ms"] is None


def counted(events) -> dict:
    """A worker's zone and line counts of stream 'a' (zone door, line road) after ``events``."""
    from streams.runtime.stats import AnalyticsCounts

    counts = AnalyticsCounts(["door"], ["road"])
    for event in events:
        counts.count(*event)
    return counts.snapshot()


def test_zone_and_line_counts_carry_over_a_dead_worker_but_not_its_occupancy():
    from streams.scale.merge import analytics_base

    died = stream(
        "a",
        **counted(
            [
                ("enter", "door", "person"),
                ("enter", "door", "person"),
                ("exit", "door", "person"),
                ("dwell", "door", "person"),
                ("cross", "road", "car", "in"),
            ]
        ),
    )
    assert died["zones"][0]["occupancy"] == 1  # one person still inside when it died
    base = {"a": analytics_base(None, died)}
    own = {"published": 0, "publish_dropped": 0}
    alone = merge_snapshots(["a"], [{}], {"a": "reconnecting"}, {}, own, 1, 1, 1.0, base)
    (row,) = alone["streams"]
    assert row["zones"] == [
        {
            "zone": "door",
            "occupancy": 0,  # its tracks went with it
            "entered": 2,
            "exited": 1,
            "dwell_alerts": 1,
            "by_class": [
                {"class": "person", "occupancy": 0, "entered": 2, "exited": 1, "dwell_alerts": 1}
            ],
        }
    ]
    assert row["lines"] == [
        {"line": "road", "in": 1, "out": 0, "by_class": [{"class": "car", "in": 1, "out": 0}]}
    ]

    restarted = stream(
        "a",
        **counted(
            [("enter", "door", "person"), ("enter", "door", "dog"), ("cross", "road", "car", "out")]
        ),
    )
    snap = {"streams": [restarted], "pipeline": pipeline(1, 1.0, 1.0)}
    (row,) = merge_snapshots(["a"], [snap], {"a": "live"}, {}, own, 1, 1, 2.0, base)["streams"]
    door, road = row["zones"][0], row["lines"][0]
    assert (door["occupancy"], door["entered"], door["exited"], door["dwell_alerts"]) == (
        2,
        4,
        1,
        1,
    )
    assert [(c["class"], c["occupancy"], c["entered"]) for c in door["by_class"]] == [
        ("dog", 1, 1),
        ("person", 1, 3),
    ]
    assert (road["in"], road["out"]) == (1, 1)
    # A second death adds up: the base is cumulative.
    again = analytics_base(base["a"], restarted)
    assert again["zones"]["door"]["person"] == {"entered": 3, "exited": 1, "dwell_alerts": 1}
    assert again["lines"]["road"]["car"] == {"in": 1, "out": 1}
