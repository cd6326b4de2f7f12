"""Another revision's ``processors`` beside this checkout's, for the before/after tools
(track_equivalence.py, tracker_before_after.py).

An editable install (``pip install -e .``, as ``make install`` does) puts an import finder
ahead of ``sys.path``: it would import the checkout's ``processors`` whatever the path says,
and "before" would run the new code. So :func:`run_python` removes that finder, puts the tree
first, and checks which file was imported.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_MARK = "processors from: "
_PRELUDE = f"""
import sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path[:0] = [sys.argv.pop(1), {str(ROOT)!r}]
import processors
print({_MARK!r} + processors.__file__, file=sys.stderr, flush=True)
"""


@contextmanager
def processors_of(ref: str) -> Iterator[Path]:
    """A temporary tree holding ``ref``'s ``processors`` (``git archive``)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "processors"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        yield Path(tmp)


def run_python(tree: Path, code: str, *args: str) -> bytes:
    """``code`` in a new interpreter (``sys.argv[1:]`` = ``args``) with ``tree``'s
    ``processors`` and this checkout's ``streams``; its standard output."""
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE + code, str(tree), *args],
        cwd=tree,  # sys.path[0] of ``-c`` is the working directory
        capture_output=True,
    )
    lines = done.stderr.decode(errors="replace").splitlines()
    if done.returncode != 0:
        raise SystemExit(f"the child failed: {' | '.join(lines[-5:])}")
    imported = Path(next(x for x in lines if x.startswith(_MARK))[len(_MARK) :]).resolve()
    if not imported.is_relative_to(tree.resolve()):
        raise SystemExit(f"processors came from {imported}, not from {tree}")
    return done.stdout
