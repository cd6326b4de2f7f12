"""A real RTSP server for tests, run as a child process that tests can kill, freeze and restart.

The server (``rtsp_server.py``) is GStreamer's RTSP server driven by the SYSTEM Python, because
``gi`` and ``GstRtspServer`` are Debian packages (``tests/support/install_rtsp_deps.sh``), not pip
ones. It serves one H.264 MP4 as a live camera: looped forever, paced in real time, shared by all
clients, who join at the live point (the next keyframe).

Where those packages cannot be installed, ``STREAMS_RTSP_PYTHON`` names the Python to use instead:
``.rtsp-kit/run``, a self-contained bundle of Debian's python3.11, gi and GStreamer built by
``tests/support/pack_rtsp_server.sh``. ``ffmpeg`` is taken from PATH, else from ``imageio_ffmpeg``.

Example:
    >>> if (reason := rtsp_available()) is not None:
    ...     pytest.skip(reason)
    >>> clip = make_test_clip(None, tmp_path / "clip.mp4")  # None: a synthetic test pattern
    >>> with RtspServer(clip, path="cam1") as server:
    ...     cap = cv2.VideoCapture(server.url, cv2.CAP_FFMPEG)
    ...     server.kill(); server.restart()  # same port, same URL
"""

from __future__ import annotations

import functools
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SYSTEM_PYTHON = Path("/usr/bin/python3")
PYTHON_ENV = "STREAMS_RTSP_PYTHON"  # another Python to run the server with, e.g. .rtsp-kit/run
SERVER_SCRIPT = Path(__file__).resolve().with_name("rtsp_server.py")
INSTALL_HINT = "run tests/support/install_rtsp_deps.sh (as root or with sudo)"
KIT_HINT = f"build it with tests/support/pack_rtsp_server.sh, or unset {PYTHON_ENV}"

# Run by the server's Python: prints nothing and exits 0 when everything the server needs is there.
_PROBE = """
import sys
try:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import Gst, GstRtspServer
except (ImportError, ValueError) as exc:
    sys.exit(f"{type(exc).__name__}: {exc}")
Gst.init(None)
missing = [e for e in ("filesrc", "qtdemux", "h264parse", "appsink", "appsrc", "rtph264pay")
           if Gst.ElementFactory.find(e) is None]
if missing:
    sys.exit("missing GStreamer elements: " + ", ".join(missing))
"""


def server_python() -> tuple[Path, str]:
    """The Python that runs the server (``$STREAMS_RTSP_PYTHON``, else the system one), and
    what to do when it does not work."""
    if custom := os.environ.get(PYTHON_ENV):
        return Path(custom), KIT_HINT
    return SYSTEM_PYTHON, INSTALL_HINT


def ffmpeg_exe() -> str | None:
    """The ``ffmpeg`` binary: the one on PATH, else imageio-ffmpeg's static build, else None."""
    if (exe := shutil.which("ffmpeg")) is not None:
        return exe
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # the package without its binary
        return None


@functools.cache
def rtsp_available(ffmpeg: bool = True) -> str | None:
    """None if the RTSP server can run here, else why not (for ``pytest.skip``).

    ``ffmpeg``: also require the ``ffmpeg`` binary that ``make_test_clip`` uses.
    """
    python, hint = server_python()
    if not python.exists():
        return f"{python} not found; {hint}"
    try:
        probe = subprocess.run(
            [str(python), "-c", _PROBE],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            env=_server_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {python}: {exc}"
    if probe.returncode != 0:
        detail = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
        return f"GStreamer RTSP server unusable from {python}: {detail}; {hint}"
    if ffmpeg and ffmpeg_exe() is None:
        return f"ffmpeg not found; {INSTALL_HINT}"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to port 0, read it back, release it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def make_test_clip(src: Path | None, dst: Path, seconds: float = 10, fps: int = 25) -> Path:
    """Re-encode ``src`` (looped if shorter) for RTSP tests: H.264 baseline, yuv420p, constant
    ``fps``, no B-frames, a keyframe every second (so clients join and recover within 1 s),
    ``seconds`` long, no audio. ``src=None`` uses FFmpeg's synthetic ``testsrc2`` pattern."""
    if (ffmpeg := ffmpeg_exe()) is None:
        raise RuntimeError(f"ffmpeg not found; {INSTALL_HINT}")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src is None:
        source = ["-f", "lavfi", "-i", f"testsrc2=size=640x360:rate={fps}"]
    else:
        source = ["-stream_loop", "-1", "-i", str(src)]
    cmd = [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        *source,
        "-t",
        f"{seconds}",
        "-an",
        "-sn",
        "-dn",
        "-vf",
        f"fps={fps},scale=trunc(iw/2)*2:trunc(ih/2)*2",  # yuv420p needs even sizes
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-profile:v",
        "baseline",
        "-pix_fmt",
        "yuv420p",
        "-bf",
        "0",
        "-g",
        str(fps),
        "-keyint_min",
        str(fps),
        "-sc_threshold",
        "0",
        "-movflags",
        "+faststart",
        str(dst),
    ]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    if result.returncode != 0 or not dst.is_file():
        raise RuntimeError(f"ffmpeg failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return dst


def _server_env() -> dict[str, str]:
    # The server's Python must not pick up the venv's packages or a PYTHONHOME meant for it.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }
    return env


class RtspServer:
    """One RTSP server process serving ``file`` at ``rtsp://host:port/path``.

    The port is chosen once (here, if not given) and kept across ``restart()``, so a client can
    reconnect to the same URL. ``kill()`` is SIGKILL (a camera losing power: no TEARDOWN, no
    FIN from the application); ``freeze()``/``thaw()`` are SIGSTOP/SIGCONT (a hung camera: TCP
    stays open, no data).
    """

    def __init__(
        self,
        file: Path,
        port: int | None = None,
        path: str = "cam",
        host: str = "127.0.0.1",
        ready_timeout: float = 20.0,
    ) -> None:
        self.file = Path(file).resolve()
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.path = path.strip("/")
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self._log = None  # the server's stderr (a temporary file: a pipe nobody reads can fill)
        self._frozen = False

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}/{self.path}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def log(self) -> str:
        """What the server wrote on stderr so far (this run)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def start(self) -> RtspServer:
        """Spawn the server and wait until it listens. Retries while the port is still taken
        (a previous server's port being released), up to ``ready_timeout``."""
        if self.running:
            raise RuntimeError(f"RTSP server already running (pid {self.proc.pid})")
        if (reason := rtsp_available(ffmpeg=False)) is not None:
            raise RuntimeError(reason)
        if not self.file.is_file():
            raise FileNotFoundError(self.file)
        deadline = time.monotonic() + self.ready_timeout
        busy = ""  # the last "cannot listen" output
        while True:
            status, detail = self._spawn_and_wait(deadline)
            if status == "ready":
                return self
            self._reap()
            if status == "port busy":
                busy = detail
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
            if busy:
                status, detail = f"{status}; port {self.port} was busy", detail or busy
            raise RuntimeError(
                f"RTSP server for {self.url} did not start ({status}): "
                f"{detail.strip()[-3000:] or '(no output)'}"
            )

    def _spawn_and_wait(self, deadline: float) -> tuple[str, str]:
        self._close_log()
        self._log = tempfile.TemporaryFile(prefix="rtsp-server-")  # noqa: SIM115 (closed in stop)
        # stdin is the server's lifeline: it exits when the pipe closes (this process died).
        cmd = [
            str(server_python()[0]),
            str(SERVER_SCRIPT),
            "--port",
            str(self.port),
            "--path",
            self.path,
            "--file",
            str(self.file),
            "--address",
            self.host,
            "--exit-on-stdin-eof",
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=_server_env(),
            start_new_session=True,  # no Ctrl-C from the test's terminal: the test decides
        )
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            line = b""
            while time.monotonic() < deadline:
                if sel.select(timeout=min(0.1, max(0.0, deadline - time.monotonic()))):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    line += chunk
                    if b"\n" in line:
                        first = line.split(b"\n", 1)[0].decode(errors="replace")
                        if first.startswith("READY "):
                            return "ready", first
                        return "unexpected output", first + "\n" + self.log()
                    if not chunk:  # EOF: the process is exiting
                        code = self.proc.wait(timeout=5)
                        text = self.log()
                        if code == 2 and "cannot listen" in text:
                            return "port busy", text
                        return f"exit code {code}", text
                elif self.proc.poll() is not None:
                    continue  # the EOF shows up on the next select
        self.proc.kill()
        self.proc.wait()
        return f"no READY within {self.ready_timeout:.0f} s", self.log()

    def kill(self) -> None:
        """SIGKILL the server and wait until it is gone (the port is released at once)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # also kills a stopped process
        self._reap()

    def freeze(self) -> None:
        """SIGSTOP: the process stops; its sockets stay open (the kernel still ACKs)."""
        self._signal(signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT: the process resumes; clients resume at the next keyframe."""
        self._signal(signal.SIGCONT)
        self._frozen = False

    def restart(self) -> RtspServer:
        """Kill (if running) and start again on the same port and path."""
        self.kill()
        return self.start()

    def stop(self) -> None:
        self.kill()
        self._close_log()

    def _signal(self, sig: int) -> None:
        if not self.running:
            raise RuntimeError(f"RTSP server for {self.url} is not running")
        self.proc.send_signal(sig)

    def _reap(self) -> None:
        if self.proc is not None:
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
        self._frozen = False

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> RtspServer:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "frozen" if self._frozen else "running" if self.running else "stopped"
        return f"RtspServer({self.url}, {state}, file={self.file.name})"
