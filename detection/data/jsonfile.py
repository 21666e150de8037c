"""Reading a JSON annotation file (COCO, VIA, LabelMe) with one-line errors.

A missing, unreadable, empty or malformed file is a DataError naming the file and, for bad
JSON, the line and column, never a traceback from inside the json module. What the parsed
value must hold is each loader's business.
"""

import contextlib
import gc
import json

from detection.data.validation import DataError

EMPTY_FILE = "empty annotation file"


def read_json(path):
    """The parsed JSON of ``path``.

    Raises DataError "PATH: cannot read annotation file: ...", "PATH: empty annotation file"
    (EMPTY_FILE) or "PATH: line L, column C: malformed JSON: ..." (one line each).
    """
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: files saved by Windows editors carry a BOM
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read annotation file: {getattr(e, 'strerror', None) or e}") from None
    if not text.strip():
        raise DataError(f"{path}: {EMPTY_FILE}")
    try:
        with gc_paused():
            return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}, column {e.colno}: malformed JSON: {e.msg}") from None


@contextlib.contextmanager
def gc_paused():
    """Pauses Python's cyclic garbage collector (restored on exit, nestable).

    Parsing a large file makes millions of objects that all stay alive and hold no cycle; each
    collection the allocations trigger walks every one made so far, again and again: measured
    (bench/data_scale.py, 10k COCO images) json.loads took 3.8 s with it, 2.1 s without.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
