"""Plain table files and text: CSV with a header row, Markdown tables of dict rows."""
import csv

__all__ = ["write_csv", "markdown_table"]


def write_csv(path, header, rows):
    """Writes a CSV file with a header row."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def markdown_table(columns, rows):
    """A Markdown table of dict rows; floats at 4 decimals, None shows as `-`."""
    def cell(value):
        return "-" if value is None else (f"{value:.4f}" if isinstance(value, float)
                                          else str(value))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(r[c]) for c in columns) + " |"
                              for r in rows])
