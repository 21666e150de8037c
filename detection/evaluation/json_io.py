"""JSON files in and out, with errors a user can act on.

``read_json`` turns every way of failing (missing file, bad syntax) into one-line
EvaluationErrors naming the file, and for bad syntax the line and column:
``results.json: not valid JSON at line 3, column 17: Expecting ',' delimiter``.
"""

import json
import os

from detection.evaluation.errors import EvaluationError


def read_json(path, what="file"):
    """The parsed content of the JSON file at ``path``; ``what`` names it in errors."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise EvaluationError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise EvaluationError(f"{path}: {what} is a directory, expected a JSON file") from None
    except json.JSONDecodeError as e:
        raise EvaluationError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise EvaluationError(f"{path}: not UTF-8 text at byte {e.start}") from None


def write_json(path, data, indent=None):
    """Writes ``data`` to ``path`` atomically (a temporary file, then a rename), so a reader
    never sees half a file; creates the parent folder."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent, allow_nan=False)
    os.replace(tmp, path)
