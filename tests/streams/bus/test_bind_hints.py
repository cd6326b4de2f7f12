"""The bind error's hint fits the failure config validation cannot catch (issue 11, item 4)."""

import pytest

from streams.bus.publisher import Publisher
from streams.config import PublishConfig
from streams.errors import PublishError
from streams.runtime.stats import PipelineStats
from tests.helpers import free_port


def publisher(endpoint):
    return Publisher(PublishConfig(endpoint=endpoint, join_grace_ms=0), PipelineStats())


def test_address_in_use_asks_about_another_process():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    first = publisher(endpoint)
    try:
        with pytest.raises(PublishError, match=r"another streams process"):
            publisher(endpoint)
    finally:
        first.close()


@pytest.mark.parametrize("host", ["192.0.2.1", "no-such-interface-xyz"])
def test_an_address_of_another_machine_is_not_blamed_on_another_process(host):
    with pytest.raises(PublishError) as info:
        publisher(f"tcp://{host}:{free_port()}")
    message = str(info.value)
    assert message.startswith("publish.endpoint: cannot bind")
    assert "another streams process" not in message
    assert "this machine" in message
