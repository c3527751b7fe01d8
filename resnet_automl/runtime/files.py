"""Files written whole or not at all: a crash, a kill or a full disk never leaves half a file.

Every file the package writes for later reading (run.json, the split, weights, caches, timings)
goes through `atomic_path`: the content is written to a temporary file beside the target and
renamed over it (`os.replace`, atomic on POSIX and Windows within one folder).
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary Path beside `path` to write; it replaces `path` when the block succeeds.

    Args:
        path: str or Path, the file to (re)write; its folder is created when missing.
        suffix: str, ending of the temporary name, for writers that insist on one (".npy",
            ".weights.h5"). Defaults to "" (none).

    On an exception the temporary file is removed and `path` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path, data, indent: int = 2) -> None:
    """Write `data` as JSON to `path` atomically; values JSON cannot hold are written as `str`."""
    write_text_atomic(path, json.dumps(data, indent=indent, default=str))


#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """`cell` (str) as a CSV text cell a spreadsheet will not run: a leading apostrophe before a
    formula character (`FORMULA_PREFIXES`), as OWASP recommends; any other text unchanged.

    Example: "=HYPERLINK(...)" -> "'=HYPERLINK(...)"; "cat" -> "cat".
    """
    return f"'{cell}" if cell.startswith(FORMULA_PREFIXES) else cell


def read_json_object(path, *, what: str, fix: str) -> dict:
    """The JSON object in `path`, or `RunStateError` naming the file, `what` it is ("the probe
    cache") and what is wrong (empty, not JSON, not an object), then `fix` (a sentence)."""
    from resnet_automl.errors import RunStateError

    path, subject = Path(path), what[:1].upper() + what[1:]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problem = "it is empty" if path.exists() and not path.stat().st_size else f"it is not valid JSON ({exc})"
        raise RunStateError(f"{subject} {str(path)!r} is damaged: {problem}. {fix}") from None
    if not isinstance(data, dict):
        raise RunStateError(f"{subject} {str(path)!r} is damaged: it holds a JSON {type(data).__name__}, "
                            f"not an object. {fix}")
    return data
