"""The TensorRT code against the real Python APIs of TensorRT 8.6, 10 and 11, on the CPU.

The engines must build on 8.6 (the GPU kit's), 10 and 11, and the GPU host has only 8.6. So:

- tests/data/tensorrt_api/VERSION.json records each real module's public names (classes with
  their members), read by tests/support/tensorrt_probe.py from the GPU kit's TensorRT 8.6.0 and
  NVIDIA's bindings wheels 10.16.1.11 and 11.4.0.106. Every ``trt.X.Y`` the code reads must exist
  in all three, or be reached only where it exists (``VERSION_BRANCHED`` says how); so must the
  members it uses on TensorRT objects (``builder.x``, ``config.x``, ...) unless they run only
  under a ``hasattr`` test of that member (``BRANCHED_MEMBERS`` lists the other branches).
- Where the bindings wheels are installed (tests/support/install_tensorrt_bindings.sh, which CI
  runs), the probe imports the real 10 and 11 modules and the build paths that
  ``engines.tensorrt_build`` picks are asserted from them; the recorded surface must equal what
  the wheel really has. Where ``import tensorrt`` works (the GPU kit), 8.6 is probed the same way.

No engine is built here: the shim that lets the bindings import (tests/support/
tensorrt_import_shim.c) makes no builder. Building is tests/engines/test_tensorrt.py's, on a GPU.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SURFACES = ROOT / "tests" / "data" / "tensorrt_api"
PROBE = ROOT / "tests" / "support" / "tensorrt_probe.py"
VERSIONS = ("8.6.0", "10.16.1.11", "11.4.0.106")
BINDINGS = Path(
    os.environ.get("STREAMS_TRT_BINDINGS")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "streams-tests"
    / "tensorrt-bindings"
)

# Module-level names some version lacks, and why the code reads them only where they exist.
VERSION_BRANCHED = {
    "NetworkDefinitionCreationFlag.EXPLICIT_BATCH": "build_flags: only where version < 10",
    "IProgressMonitor": "_progress_monitor: hasattr(trt, 'IProgressMonitor') (10+)",
}
# Members of TensorRT objects some version lacks, read only on a path that version never takes.
BRANCHED_MEMBERS = {
    "int8_calibrator": "_implicit_calibrator: calibrator methods are refused on 11 (_int8_onnx)",
    "max_workspace_size": "the else of hasattr(config, 'set_memory_pool_limit') (8.6 has both)",
    "precision": "int8_tail.keep_tail_fp16 (ILayer.precision): calibrator path only, not on 11",
    "set_output_type": "int8_tail.keep_tail_fp16: calibrator path only, not on 11",
}
# Variable names that hold TensorRT objects in the engines and benchmarks.
TRT_OBJECTS = {
    "builder",
    "config",
    "network",
    "parser",
    "engine",
    "plan",
    "context",
    "ctx",
    "probe",
    "inspector",
    "profile",
    "runtime",
    "layer",
    "tensor",
    "serialized",
    "error",
}


def load_surface(version: str) -> dict[str, list[str] | None]:
    data = json.loads((SURFACES / f"{version}.json").read_text())
    assert data["version"] == version
    return data["names"]


def trt_sources() -> dict[Path, str]:
    """Every module of engines/, streams/ and benchmarks/ that reads ``trt.<name>``."""
    found = {}
    for folder in ("engines", "streams", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text()
            if re.search(r"\btrt\.[A-Za-z]", text):
                found[path] = text
    return found


def trt_chains(tree: ast.AST) -> set[str]:
    """``X`` and ``X.Y`` for every ``trt.X`` / ``trt.X.Y`` read in the module."""
    chains = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "trt" and not node.attr.startswith("__"):
                chains.add(node.attr)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "trt"
            and not node.attr.startswith("__")
        ):
            chains.add(f"{node.value.attr}.{node.attr}")
    return chains


def checks_hasattr(expr: ast.AST, name: str) -> bool:
    """Whether ``expr`` contains ``hasattr(..., "name")``."""
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Name)
        and n.func.id == "hasattr"
        and len(n.args) == 2
        and isinstance(n.args[1], ast.Constant)
        and n.args[1].value == name
        for n in ast.walk(expr)
    )


def guarded(node: ast.AST, name: str, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` runs only where a ``hasattr(..., name)`` around it held: inside the
    test or body of an ``if``/conditional expression on it, or after it in an ``and``."""
    child, up = node, parents.get(node)
    while up is not None:
        if isinstance(up, (ast.If, ast.IfExp)) and checks_hasattr(up.test, name):
            orelse = up.orelse if isinstance(up.orelse, list) else [up.orelse]
            if child not in orelse:
                return True
        if isinstance(up, ast.BoolOp) and isinstance(up.op, ast.And):
            if any(checks_hasattr(v, name) for v in up.values[: up.values.index(child)]):
                return True
        child, up = up, parents.get(up)
    return False


def exists(surface: dict[str, list[str] | None], chain: str) -> bool:
    head, _, member = chain.partition(".")
    if head not in surface:
        return False
    return not member or member in (surface[head] or [])


def test_the_recorded_surfaces_are_the_three_versions() -> None:
    for version in VERSIONS:
        names = load_surface(version)
        assert {"Builder", "IBuilderConfig", "ICudaEngine", "OnnxParser"} <= set(names)
        assert "FP16" in names["BuilderFlag"] or version.startswith("11.")
    # What 11 removed and the code must not need there (why the branches exist at all).
    eleven = load_surface("11.4.0.106")
    assert "INT8" not in eleven["BuilderFlag"] and "FP16" not in eleven["BuilderFlag"]
    assert "IInt8MinMaxCalibrator" not in eleven
    assert "EXPLICIT_BATCH" not in eleven["NetworkDefinitionCreationFlag"]


def test_every_trt_name_the_code_reads_exists_in_8_6_10_and_11_or_is_branched() -> None:
    surfaces = {v: load_surface(v) for v in VERSIONS}
    used: set[str] = set()
    problems = []
    for path, text in trt_sources().items():
        for chain in sorted(trt_chains(ast.parse(text))):
            used.add(chain)
            missing = [v for v, s in surfaces.items() if not exists(s, chain)]
            if not missing or chain in VERSION_BRANCHED:
                continue
            problems.append(f"{path.relative_to(ROOT)}: trt.{chain} is missing in {missing}")
    assert not problems, "\n".join(problems)
    stale = set(VERSION_BRANCHED) - used
    assert not stale, f"VERSION_BRANCHED entries the code no longer reads: {stale}"
    for chain in VERSION_BRANCHED:
        assert not all(exists(s, chain) for s in surfaces.values()), f"{chain} is in all three"


def test_members_used_on_tensorrt_objects_exist_everywhere_or_are_guarded() -> None:
    surfaces = {v: load_surface(v) for v in VERSIONS}
    members = {v: {m for ms in s.values() if ms for m in ms} for v, s in surfaces.items()}
    known = set().union(*members.values())
    used: set[str] = set()
    problems = []
    for path, text in trt_sources().items():
        tree = ast.parse(text)
        parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in TRT_OBJECTS
                and node.attr in known  # else it is one of this project's own objects
            ):
                continue
            used.add(node.attr)
            missing = [v for v, m in members.items() if node.attr not in m]
            if missing and not (node.attr in BRANCHED_MEMBERS or guarded(node, node.attr, parents)):
                problems.append(
                    f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr} "
                    f"is missing in TensorRT {missing} and not guarded"
                )
    assert not problems, "\n".join(sorted(set(problems)))
    assert not set(BRANCHED_MEMBERS) - used, "BRANCHED_MEMBERS entries no longer used"


def test_every_guarded_name_is_real_tensorrt_somewhere() -> None:
    """A ``hasattr(trt.X, "Y")`` for a name no version has is a typo that hides a path."""
    surfaces = [load_surface(v) for v in VERSIONS]
    pattern = re.compile(r'(?:hasattr|getattr)\(\s*trt(?:\.(\w+))?,\s*"(\w+)"')
    problems = []
    for path, text in trt_sources().items():
        for head, name in pattern.findall(text):
            chain = f"{head}.{name}" if head else name
            if not any(exists(s, chain) for s in surfaces):
                problems.append(f"{path.relative_to(ROOT)}: trt.{chain} is in no TensorRT")
    assert not problems, "\n".join(problems)


# -- the real modules ------------------------------------------------------------------------


def probe(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(PROBE), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def bindings_env(version: str) -> dict[str, str]:
    """The environment that imports NVIDIA's bindings for ``version``, or skip (fail in CI)."""
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    folder = BINDINGS / f"{version}-{tag}"
    if not (folder / ".ready").is_file():
        reason = (
            f"TensorRT {version} bindings are not installed in {folder} "
            "(PYTHON=.venv/bin/python bash tests/support/install_tensorrt_bindings.sh)"
        )
        if os.environ.get("STREAMS_REQUIRE_TRT_BINDINGS"):
            pytest.fail(f"STREAMS_REQUIRE_TRT_BINDINGS is set: {reason}")
        pytest.skip(reason)
    return {"PYTHONPATH": str(folder / "site"), "LD_LIBRARY_PATH": str(folder / "lib")}


def test_tensorrt_10_builds_with_builder_flags_and_its_calibrators() -> None:
    out = probe(bindings_env("10.16.1.11"), "--bindings")
    assert out["version"] == "10.16.1.11"
    assert out["names"] == load_surface("10.16.1.11"), "refresh tests/data/tensorrt_api"
    got = out["decisions"]
    assert got["version_tuple"] == [10, 16]
    assert (got["fp16_mode"], got["int8_mode"]) == ("builder_flag", "builder_flag")
    assert got["calibrators"] == {"entropy": True, "minmax": True}
    assert got["int8_auto"] == "minmax"
    flags = got["flags"]
    assert flags["fp32"] == {
        "network": [],
        "builder": [],
        "builder_flags_exist": True,
        "strongly_typed": False,
    }
    assert flags["fp16"]["builder"] == ["FP16"] and flags["fp16"]["network"] == []
    assert flags["int8"]["builder"] == ["INT8", "FP16"] and flags["int8"]["network"] == []
    assert all(f["builder_flags_exist"] for f in flags.values())
    assert got["tactic_sources_cleared"] == ["CUBLAS", "CUBLAS_LT", "CUDNN"]
    assert {"FLOAT", "HALF", "INT64"} <= set(got["numpy_dtypes"])
    assert got["logger_errors"] == ["probe error"]  # our ILogger subclass, made by the real one
    assert got["progress_monitor"] is True


def test_tensorrt_11_builds_strongly_typed_with_qdq_and_no_removed_api() -> None:
    out = probe(bindings_env("11.4.0.106"), "--bindings")
    assert out["version"] == "11.4.0.106"
    assert out["names"] == load_surface("11.4.0.106"), "refresh tests/data/tensorrt_api"
    got = out["decisions"]
    assert got["version_tuple"] == [11, 4]
    assert (got["fp16_mode"], got["int8_mode"]) == ("strongly_typed", "strongly_typed")
    assert got["calibrators"] == {"entropy": False, "minmax": False}
    assert got["int8_auto"] == "qdq"  # the only int8 11 can build
    flags = got["flags"]
    assert flags["fp32"]["network"] == [] and flags["fp32"]["builder"] == []
    for precision in ("fp16", "int8"):
        assert flags[precision]["strongly_typed"] is True
        assert flags[precision]["builder"] == []  # FP16/INT8 flags are gone in 11
        assert flags[precision]["network"] == ["STRONGLY_TYPED"]  # kept by 11, ignored
    assert got["tactic_sources_cleared"] == []  # 11 dropped cuBLAS/cuDNN tactic sources
    assert got["logger_errors"] == ["probe error"]
    assert got["progress_monitor"] is True


@pytest.mark.gpu  # so benchmarks/gpu_tests.sh runs it; it needs only the kit's 8.6, no GPU
def test_tensorrt_8_6_where_it_imports() -> None:
    """The GPU kit's real 8.6 (skips where ``import tensorrt`` fails, as in CI)."""
    found = subprocess.run(
        [sys.executable, "-c", "import tensorrt; print(tensorrt.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0 or not found.stdout.startswith("8."):
        pytest.skip("no TensorRT 8.x imports here (the GPU kit has one)")
    out = probe({})
    if out["version"] in VERSIONS:
        assert out["names"] == load_surface(out["version"])
    got = out["decisions"]
    assert (got["fp16_mode"], got["int8_mode"], got["int8_auto"]) == (
        "builder_flag",
        "builder_flag",
        "minmax",
    )
    for precision, builder in (("fp32", []), ("fp16", ["FP16"]), ("int8", ["INT8", "FP16"])):
        assert got["flags"][precision]["network"] == ["EXPLICIT_BATCH"]
        assert got["flags"][precision]["builder"] == builder
    assert got["progress_monitor"] is False  # 8.6 has no IProgressMonitor
