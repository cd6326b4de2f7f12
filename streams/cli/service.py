"""``streams install-service``: the systemd unit for an edge box (deploy/streams.service is
this text for a venv in /opt/streams/venv; tests/test_service.py keeps the two equal).

Why these settings: ``Type=notify`` + ``WatchdogSec`` let systemd know when the pipeline runs
and when it is wedged (``streams/cli/systemd.py``); ``Restart=on-failure`` brings it back, but
not after a config error (exit 2: restarting cannot fix the file); ``DynamicUser`` runs it as
an unprivileged user that exists only while it runs, allowed to write only its cache (assets,
TensorRT engines) and runtime directory; ``video``/``render`` give that user the GPU on a
Jetson (desktop NVIDIA device nodes are open to all).
"""

from __future__ import annotations

import sys
from pathlib import Path

CONFIG_PATH = "/etc/streams/config.yaml"
UNIT_NAME = "streams.service"
UNIT_DIR = Path("/etc/systemd/system")

UNIT_TEMPLATE = """\
# streams as a systemd service: docs/deploy-x86.md, docs/deploy-jetson.md.
# Written by `streams install-service`; edit with `systemctl edit streams` to keep changes apart.
[Unit]
Description=streams video analytics pipeline
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
ExecStart={executable} run {config} --no-live
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
# Exit 2 is a config error: restarting cannot fix the file.
RestartPreventExitStatus=2
# Pings every WatchdogSec/2 while the batcher moves; none once it is wedged.
WatchdogSec=30
# The first start may build a TensorRT engine (minutes on a Jetson); `streams build-engine`
# ahead of time makes starts quick.
TimeoutStartSec=30min
TimeoutStopSec=30
DynamicUser=yes
SupplementaryGroups=video render
ConfigurationDirectory=streams
CacheDirectory=streams
RuntimeDirectory=streams
Environment=STREAMS_CACHE=/var/cache/streams
Environment=PYTHONUNBUFFERED=1
StandardOutput=journal
StandardError=journal
SyslogIdentifier=streams

[Install]
WantedBy=multi-user.target
"""


def default_executable() -> str:
    """This environment's ``streams`` script, or ``python -m streams`` where it has none."""
    script = Path(sys.executable).parent / "streams"
    return str(script) if script.is_file() else f"{sys.executable} -m streams"


def unit_text(executable: str | None = None, config: str = CONFIG_PATH) -> str:
    """The unit for ``executable`` (default: this environment's) running ``config``."""
    return UNIT_TEMPLATE.format(executable=executable or default_executable(), config=config)
