"""The page of a batch-prediction run: escaped, path-free, relative thumbnails, fits 1280 px."""
import io
import re

import pytest
from PIL import Image

from pipeline.prediction.page import write_predict_page
from tests.test_report_runs import CHROMIUM, chromium_overflow

SCRIPT = "<script>alert(1)</script>"
AMP = 'a & "b"'
CLASSES = ["cat", SCRIPT, AMP]


def _jpeg(shade):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (shade, 255 - shade, 128)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _lowest(class_names, count, *, with_thumbs, id_of=lambda i: f"img-{i:03d}.jpg"):
    return [{"id": id_of(i), "label": class_names[i % len(class_names)],
             "probability": 0.3 + i * 0.01, "true_label": "",
             "top_k": [[class_names[i % len(class_names)], 0.3 + i * 0.01],
                       [class_names[(i + 1) % len(class_names)], 0.25]],
             "thumbnail": _jpeg(i * 15) if i < with_thumbs else None} for i in range(count)]


@pytest.fixture
def page(tmp_path):
    lowest = _lowest(CLASSES, 14, with_thumbs=12)
    lowest[0]["id"] = f"{SCRIPT}.jpg"
    lowest[1].update(label="cat", true_label=AMP)
    skipped = [{"id": f"bad-{i}.jpg", "path": f"/srv/data/new images/bad-{i}.jpg",
                "reason": "not an image: <truncated> & broken"} for i in range(60)]
    path = write_predict_page(
        str(tmp_path / "run"), title=f"Predict {SCRIPT}", subtitle=f"model {AMP}",
        class_names=CLASSES, per_class={"cat": 7, SCRIPT: 123, AMP: 0},
        histogram=[0, 0, 1, 3, 5, 8, 13, 21, 34, 45], lowest=lowest,
        counts={"listed": 190, "predicted": 100, "reused": 30, "skipped": 60}, skipped=skipped)
    return tmp_path, path, skipped


def test_page_escapes_every_text_and_shows_no_path(page):
    tmp_path, path, skipped = page
    assert path == str(tmp_path / "run" / "index.html")
    text = open(path, encoding="utf-8").read()
    assert SCRIPT not in text and "<script" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "a &amp; &quot;b&quot;" in text and AMP not in text
    assert "&lt;truncated&gt; &amp; broken" in text
    assert str(tmp_path) not in text and "/srv/" not in text
    assert not any(s["path"] in text for s in skipped)
    assert not re.search(r'(src|href)="(/|file:)', text)


def test_page_shows_counts_queue_and_skipped(page):
    tmp_path, path, _ = page
    text = open(path, encoding="utf-8").read()
    rows = re.findall(r"<tr><td>([^<]*)</td><td class=\"n\">([\d,]+)</td>", text)
    assert rows[:3] == [("&lt;script&gt;alert(1)&lt;/script&gt;", "123"), ("cat", "7"),
                        ("a &amp; &quot;b&quot;", "0")]  # by count, descending
    assert "0.9462" in text  # 123 / 130, the share
    assert "190" in text and "reused" in text
    assert "true: a &amp; &quot;b&quot;" in text
    assert text.count("true:") == 1  # only the tile whose true label differs
    assert text.count("(no image)") == 2
    assert "bad-49.jpg" in text and "bad-50.jpg" not in text
    assert "10 more" in text
    assert 'src="confidence.png"' in text and (tmp_path / "run" / "confidence.png").stat().st_size
    thumbs = sorted(p.name for p in (tmp_path / "run" / "thumbs").iterdir())
    assert thumbs == [f"{i:04d}.jpg" for i in range(12)]
    for name in thumbs:
        assert f'src="thumbs/{name}"' in text
        Image.open(tmp_path / "run" / "thumbs" / name).verify()
    assert not list((tmp_path / "run").rglob("*.tmp*"))


def test_empty_run_still_writes_a_page(tmp_path):
    path = write_predict_page(str(tmp_path), title="Nothing", class_names=["a", "b"],
                              per_class={"a": 0, "b": 0}, histogram=[0] * 10, lowest=[],
                              counts={"listed": 0, "predicted": 0, "reused": 0, "skipped": 0},
                              skipped=[])
    text = open(path, encoding="utf-8").read()
    assert "No predictions." in text and "No images." in text and "Nothing was skipped." in text
    assert not (tmp_path / "thumbs").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_hundred_classes_and_long_ids_fit_1280_pixels_in_chromium(tmp_path):
    classes = [f"class_{i:03d}_" + "x" * (i % 40) for i in range(100)]
    long_id = "s3-bucket-of-new-images/" + "very_long_directory_name_" * 8 + "{:03d}.jpg"
    lowest = _lowest(classes, 40, with_thumbs=36, id_of=long_id.format)
    lowest[3]["true_label"] = classes[99]
    skipped = [{"id": long_id.format(i), "path": "/x", "reason": "unreadable " + "z" * 150}
               for i in range(55)]
    path = write_predict_page(
        str(tmp_path / "run"), title="Predict flowers", subtitle="model " + "m" * 300,
        class_names=classes, per_class={c: (i * 37) % 101 for i, c in enumerate(classes)},
        histogram=[(i * 7) % 50 for i in range(20)], lowest=lowest,
        counts={"listed": 5000, "predicted": 4945, "reused": 0, "skipped": 55}, skipped=skipped)
    page = tmp_path / "run" / "index.html"
    assert path == str(page)
    shot = tmp_path / "run.png"
    assert chromium_overflow(page, shot) <= 0
    assert shot.stat().st_size > 10_000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_three_class_page_fits_1280_pixels_in_chromium(page):
    tmp_path, path, _ = page
    shot = tmp_path / "three.png"
    assert chromium_overflow(tmp_path / "run" / "index.html", shot) <= 0
    assert shot.stat().st_size > 10_000
