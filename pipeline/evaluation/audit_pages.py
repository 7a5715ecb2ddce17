"""The pages and CSV files of a data audit (`pipeline.evaluation.audit`), escaped like every
report page."""
import os

from pipeline.reports import write_csv
from pipeline.reports.pages import headline, table, thumbnail, thumbnail_grid, write_page

__all__ = ["write_csvs", "write_detail_pages", "write_index", "summary_line"]


def _counted(count, noun):
    """`"1 outlier"`, `"3 outliers"`: a whole count with its noun."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _estimated_errors(report):
    """cleanlab's estimate of the label errors, a whole number (report.json keeps one decimal)."""
    return _counted(round(report["estimated_label_errors"]), "label error")


def summary_line(report):
    """The audit's result in one line, as `jobs.audit` prints it.

    Example:
        >>> summary_line(report)
        '63 images: 4 label issues (cleanlab estimates 3 label errors), 2 duplicate sets (1 exact;
        1 leaking across splits, 1 under two classes), 1 outlier; out-of-fold accuracy 0.9365'
    """
    return (f"{_counted(report['num_images'], 'image')}: "
            f"{_counted(report['num_label_issues'], 'label issue')} (cleanlab estimates "
            f"{_estimated_errors(report)}), "
            f"{_counted(report['num_duplicate_sets'], 'duplicate set')} "
            f"({report['num_exact_duplicate_sets']} exact; {len(report['leaks'])} leaking "
            f"across splits, {len(report['label_conflicts'])} under two classes), "
            f"{_counted(report['num_outliers'], 'outlier')}; out-of-fold accuracy "
            f"{report['out_of_fold_accuracy']:.4f}")


def _tiles(out_dir, data, items):
    """Thumbnail tiles for `(index, caption lines)` items (thumbs/<index>.jpg, made once)."""
    tiles = []
    for index, lines in items:
        thumb = f"thumbs/{index:06d}.jpg"
        path = data.paths[index]
        ok = bool(path) and (os.path.isfile(os.path.join(out_dir, thumb)) or thumbnail(
            path, os.path.join(out_dir, thumb)))
        tiles.append((thumb if ok else "", str(data.records.ids[data.clean][index]), lines))
    return tiles


def write_detail_pages(out_dir, data, title, found, *, top_n=100):
    """Writes `label_issues.html`, `near_duplicates.html` and `outliers.html` (thumbnails)."""
    labels = [r for r in found["label_issues"] if r["is_label_issue"]][:top_n]
    write_page(os.path.join(out_dir, "label_issues.html"), f"Label issues: {title}",
               thumbnail_grid(_tiles(out_dir, data, [(r["index"], [
                   f"#{number} {r['id']}", f"given: {r['given_label']}",
                   f"suggested: {r['suggested_label']}",
                   f"quality {r['label_quality']:.4f}"]) for number, r in enumerate(labels, 1)])),
               subtitle="The images flagged as label issues, most suspicious first; every image "
                        "is ranked in label_issues.csv.")
    sections = []
    for row in found["near_duplicates"][:top_n]:
        flags = [f for f, on in (("LEAK across splits", row["leak"]),
                                 ("LABEL CONFLICT", row["label_conflict"])) if on]
        labels_of = data.records.labels[data.clean]
        heading = (f"<h2>Set {row['set']}: {row['kind']}, distance {row['distance']:.4g}"
                   f"{' · ' + ' · '.join(flags) if flags else ''}</h2>")
        sections.append(heading + thumbnail_grid(_tiles(out_dir, data, [(i, [
            str(data.records.ids[data.clean][i]), data.class_names[labels_of[i]],
            str(data.splits[data.clean][i])]) for i in row["members"]])))
    write_page(os.path.join(out_dir, "near_duplicates.html"), f"Duplicates: {title}",
               "".join(sections) or "<p>Nothing found.</p>")
    outliers = [(r["index"], [f"#{r['rank']} {r['id']}", r["label"],
                              f"score {r['outlier_score']:.4f}"])
                for r in found["outliers"][:top_n]]
    write_page(os.path.join(out_dir, "outliers.html"), f"Outliers: {title}",
               thumbnail_grid(_tiles(out_dir, data, outliers)) if outliers
               else "<p>Nothing found.</p>",
               subtitle="Most unusual first, by Datalab's outlier score on the embeddings.")


def write_csvs(out_dir, found):
    """Writes `label_issues.csv`, `near_duplicates.csv`, `outliers.csv`, `label_error_pairs.csv`."""
    label_columns = ["rank", "id", "path", "given_label", "suggested_label", "label_quality",
                     "is_label_issue"]
    write_csv(os.path.join(out_dir, "label_issues.csv"), label_columns,
              [[r[c] for c in label_columns] for r in found["label_issues"]])
    write_csv(os.path.join(out_dir, "near_duplicates.csv"),
              ["set", "kind", "distance", "ids", "classes", "splits", "leak", "label_conflict"],
              [[r["set"], r["kind"], r["distance"], ";".join(r["ids"]), ";".join(r["classes"]),
                ";".join(r["splits"]), r["leak"], r["label_conflict"]]
               for r in found["near_duplicates"]])
    write_csv(os.path.join(out_dir, "outliers.csv"), ["rank", "id", "path", "label",
                                                      "outlier_score"],
              [[r[c] for c in ("rank", "id", "path", "label", "outlier_score")]
               for r in found["outliers"]])
    write_csv(os.path.join(out_dir, "label_error_pairs.csv"),
              ["given_label", "true_label", "estimated_errors"],
              [list(r.values()) for r in found["label_error_pairs"]])


def write_index(out_dir, title, report):
    """Writes the audit's `index.html`: headline counts, links, label errors per class pair."""
    cards = headline([
        ("images", report["num_images"], ""),
        ("label issues", report["num_label_issues"],
         f"cleanlab estimates {_estimated_errors(report)}"),
        ("duplicate sets", report["num_duplicate_sets"],
         f"{report['num_exact_duplicate_sets']} exact"),
        ("leaks across splits", len(report["leaks"]), ""),
        ("label conflicts", len(report["label_conflicts"]), ""),
        ("outliers", report["num_outliers"], ""),
        ("out-of-fold accuracy", report["out_of_fold_accuracy"], "")])
    links = ('<ul><li><a href="label_issues.html">label issues</a> (label_issues.csv)</li>'
             '<li><a href="near_duplicates.html">duplicates, leaks and conflicts</a> '
             '(near_duplicates.csv)</li><li><a href="outliers.html">outliers</a> '
             '(outliers.csv)</li><li><a href="report.json">report.json</a></li></ul>')
    write_page(os.path.join(out_dir, "index.html"), f"Data audit: {title}",
               cards + links + "<h2>Estimated label errors per class pair</h2>"
               + _pairs_table(report["label_error_pairs"]),
               subtitle=f"cache {report['cache_key']} · {report['config']['folds']}-fold "
                        f"{report['config']['head']} heads · {report['created']}")


def _pairs_table(pairs, *, top=20):
    """The class pairs with estimated label errors, most first (at most `top`), and a note of
    the pairs left out: those beyond `top`, and those with none."""
    found = [pair for pair in pairs if pair["estimated_errors"] > 0]
    left_out = [text for count, text in (
        (len(found) - top, f"{len(found) - top:,} more with fewer estimated errors"),
        (len(pairs) - len(found), f"{_counted(len(pairs) - len(found), 'class pair')} with none"))
        if count > 0]
    note = (f"<p>Not shown: {'; '.join(left_out)} (every pair is in label_error_pairs.csv).</p>"
            if left_out else "")
    shown = table(["given_label", "true_label", "estimated_errors"], found[:top]) if found else ""
    return shown + note
