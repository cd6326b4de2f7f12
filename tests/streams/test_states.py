"""The stream lifecycle: one enum, its moves, and the states messages may carry."""

import json

import pytest

from streams.bus.messages import STATES, status_message
from streams.states import TRANSITIONS, BadTransition, StreamState, advance


def test_every_state_has_its_moves_and_only_starting_is_never_published():
    assert set(TRANSITIONS) == set(StreamState)
    assert STATES == ("connecting", "live", "reconnecting", "ended", "failed")
    with pytest.raises(ValueError, match="unknown state 'starting'"):
        status_message("cam", StreamState.STARTING.value)


@pytest.mark.parametrize(
    "old, new",
    [
        ("starting", "connecting"),
        ("connecting", "live"),
        ("live", "reconnecting"),
        ("reconnecting", "live"),
        ("live", "ended"),
        ("connecting", "failed"),
        ("live", "connecting"),  # NVDEC gave up: the stream starts again on the CPU
        ("ended", "reconnecting"),  # its worker process died and is being restarted
    ],
)
def test_the_lifecycle_moves(old, new):
    assert advance(old, new) is StreamState(new)


@pytest.mark.parametrize(
    "old, new",
    [("ended", "live"), ("failed", "connecting"), ("ended", "ended"), ("starting", "live")],
)
def test_moves_the_lifecycle_does_not_have_are_refused_with_both_names(old, new):
    with pytest.raises(BadTransition, match=f"from {old} to {new}"):
        advance(old, new)


def test_a_state_is_its_string_in_json_and_in_text():
    assert json.dumps({"state": StreamState.LIVE}) == '{"state": "live"}'
    assert f"{StreamState.FAILED}" == "failed" and StreamState.LIVE == "live"
    assert StreamState.ENDED.terminal and StreamState.FAILED.terminal
    assert not StreamState.RECONNECTING.terminal
