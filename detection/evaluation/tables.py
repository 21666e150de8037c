"""Text tables of per-category AP, shared by the COCO and VOC reports."""


def format_ap_table(ap_by_name, columns=3, label="category"):
    """{name: AP} -> a text table of ``columns`` (name, AP) pairs a row, AP with 3
    decimals as COCOeval prints it, "-" for -1 (no GT to measure)::

        category      AP | category      AP
        ------------------------------------
        person     0.533 | bicycle        -
    """
    cells = [(name, "-" if ap < 0 else f"{ap:.3f}") for name, ap in ap_by_name.items()]
    width = max([len(label)] + [len(name) for name, _ in cells])
    header = " | ".join([f"{label:<{width}} {'AP':>5}"] * min(columns, max(len(cells), 1)))
    rows = [header, "-" * len(header)]
    for start in range(0, len(cells), columns):
        rows.append(" | ".join(f"{name:<{width}} {ap:>5}" for name, ap in cells[start:start + columns]))
    return "\n".join(rows)
