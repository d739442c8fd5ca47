"""One table formatter for every report (benchmarks, examples, validation)."""


def table(rows, header, align=None, style="markdown"):
    """Format rows as a table with padded columns.

    Parameters
    ----------
    rows : sequence of sequence
        The cells (formatted with ``str``).
    header : sequence of str
    align : str, optional
        One character per column, ``"l"`` (default) or ``"r"``.
    style : {"markdown", "text"}
        A GitHub Markdown table (``|`` in cells escaped), or plain text with
        two spaces between columns and a rule under the header.

    Returns
    -------
    str

    Examples
    --------
    >>> print(table([["dopri5", 1.5e-9]], ["method", "error"], align="lr"))
    | method |   error |
    |--------|--------:|
    | dopri5 | 1.5e-09 |
    >>> print(table([["dopri5", "1e-9"]], ["method", "error"], style="text"))
    method  error
    ------  -----
    dopri5  1e-9
    """
    if style not in ("markdown", "text"):
        raise ValueError(f"`style` must be 'markdown' or 'text'; got {style!r}.")
    esc = (lambda s: str(s).replace("|", "\\|")) if style == "markdown" else str
    header = [esc(h) for h in header]
    rows = [[esc(c) for c in r] for r in rows]
    align = align or "l" * len(header)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"`align` must have one 'l' or 'r' per column ({len(header)}); "
                         f"got {align!r}.")
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def cells(r):
        return [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)]

    if style == "text":
        lines = [header, ["-" * w for w in widths]] + rows
        return "\n".join("  ".join(cells(r)).rstrip() for r in lines)
    rule = "|" + "|".join("-" * (w + 1) + (":" if a == "r" else "-")
                          for w, a in zip(widths, align)) + "|"
    lines = ["| " + " | ".join(cells(r)) + " |" for r in [header] + rows]
    return "\n".join(lines[:1] + [rule] + lines[1:])
