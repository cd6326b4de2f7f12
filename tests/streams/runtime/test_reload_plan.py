"""What a reload may change live: only streams; every other differing key is named."""

import pytest

from streams.config import parse_config
from streams.runtime.reload import ReloadRefused, plan_reload, stream_differences


def config(streams, **sections):
    return parse_config({"streams": streams, **sections})


A = {"id": "a", "url": "rtsp://cam-a/s"}
B = {"id": "b", "url": "rtsp://cam-b/s"}
C = {"id": "c", "url": "rtsp://cam-c/s"}


def test_streams_added_removed_and_changed_in_config_order():
    plan = plan_reload(config([A, B]), config([C, {**A, "loop": True}]))
    assert (plan.added, plan.removed, plan.changed) == (("c",), ("b",), ("a",))
    assert plan.describe() == "added c; removed b; restarted a"
    assert plan_reload(config([A]), config([A])).describe() == "no stream changed"


def test_fps_zones_and_lines_alone_change_in_place_anything_more_restarts():
    plan = plan_reload(config([A, B]), config([{**A, "fps": 5}, {**B, "fps": 5, "pace": "none"}]))
    assert (plan.changed, plan.retuned) == (("b",), ("a",))
    assert plan.describe() == "restarted b; changed in place a"
    assert not plan.empty


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"engine": {"backend": "onnxruntime"}}, "engine.backend"),
        ({"publish": {"endpoint": "tcp://127.0.0.1:6000"}}, "publish.endpoint"),
        ({"model": {"conf_threshold": 0.5}}, "model.conf_threshold"),
        ({"workers": {"processes": 2}}, "workers.processes"),
    ],
)
def test_anything_but_streams_is_refused_by_name(section, key):
    with pytest.raises(ReloadRefused, match=rf"^{key} changed, which cannot apply while running"):
        plan_reload(config([A]), config([A, B], **section))


def test_a_changed_zone_or_line_changes_its_stream_only_in_place():
    square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    zoned = {**A, "tracking": {"enabled": True}, "zones": [{"name": "z", "points": square}]}
    moved = {**zoned, "zones": [{"name": "z", "points": [[1, 1], *square[1:]]}]}
    lined = {**zoned, "lines": [{"name": "l", "a": [0, 0], "b": [5, 5]}]}
    old = config([zoned, B])
    for new, keys in ((moved, ["zones"]), (lined, ["lines"])):
        plan = plan_reload(old, config([new, B]))
        assert (plan.added, plan.removed, plan.changed, plan.retuned) == ((), (), (), ("a",))
        assert stream_differences(old.streams[0], config([new]).streams[0]) == keys
    assert plan_reload(old, config([zoned, B])).empty  # the same zones: nothing restarts
