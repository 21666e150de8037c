"""Formats with one annotation file per image in a folder (VOC XML, LabelMe JSON): finding the
files, reading a split list, and parsing each file with its problems counted.

An annotation file's stem is its image's key: ``a.xml`` / ``a.json`` annotates image ``a``.
A split file lists stems, one per line; only the first word counts (so VOC's
ImageSets/Main/<class>_train.txt works too) and lines starting with ``#`` are skipped.

Class discovery reads every file of the folder, not only the split, so the train and val
splits of one folder agree on the class list (``parse_files(..., read_all=True)``).
"""

import os

from detection.data.images import ImageReadError, read_image
from detection.data.jsonfile import EMPTY_FILE
from detection.data.validation import DataError


def annotation_files(folder, extension, report):
    """{stem: path} of the files of ``folder`` ending in ``extension`` (".xml", any case);
    a stem seen twice (``a.xml`` and ``a.XML``) is counted and the later file ignored."""
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"{folder}: annotation folder not found") from None
    files = {}
    for filename in names:
        stem, ext = os.path.splitext(filename)
        if ext.lower() != extension:
            continue
        path = os.path.join(folder, filename)
        if stem in files:
            report.add("duplicate_image_id", path, "", f"stem {stem} also in {os.path.basename(files[stem])}")
            continue
        files[stem] = path
    return files


def read_split(path):
    """Image stems listed in a split file, in order (first word of each non-empty line)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read split file: {e.strerror or e}") from None
    return [line.split()[0] for line in lines if line.strip() and not line.lstrip().startswith("#")]


def wanted_stems(files, split, report, folder, extension):
    """The stems to load: all of ``files`` (sorted) without a split file, else the split's
    stems in its order, repeats dropped; a stem without a file ``folder``/STEM``extension``
    is counted."""
    if split is None:
        return sorted(files)
    wanted = []
    for stem in dict.fromkeys(read_split(split)):  # keep order, drop repeats
        if stem in files:
            wanted.append(stem)
        else:
            report.add("missing_annotation", split, stem, f"no {stem}{extension} in {folder}")
    return wanted


def parse_files(files, wanted, parse, report, read_all):
    """{stem: parse(path), or None when the file is empty or malformed} for the ``wanted``
    stems, whose problems are counted in ``report``; with ``read_all`` every other file of
    ``files`` too (for class discovery), its problems not counted (not part of this split).

    parse: path -> parsed value, raising DataError "PATH: ..." for a bad file.
    """
    wanted = set(wanted)
    return {stem: _parse_counted(parse, path, report if stem in wanted else None)
            for stem, path in files.items() if read_all or stem in wanted}


def _parse_counted(parse, path, report):
    try:
        return parse(path)
    except DataError as e:
        if report is not None:
            kind = "empty_annotation" if str(e).endswith(EMPTY_FILE) else "malformed_annotation"
            report.add(kind, path, "", str(e).split(": ", 1)[1])
        return None


def size_or_read(height, width, image_path, report, file, field):
    """(height, width) as the annotation file gives them when both are integers > 0; else read
    from the image and counted as ``malformed_annotation`` at ``field``; None (counted
    ``unreadable_image``) when the image cannot be read either."""
    if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (height, width)):
        return height, width
    try:
        height, width = read_image(image_path).shape[:2]
    except ImageReadError as e:
        report.add("unreadable_image", image_path, "", str(e).split(": ", 1)[-1], once=True)
        return None
    report.add("malformed_annotation", file, field, f"size missing or invalid; {height}x{width} read from the image")
    return height, width
