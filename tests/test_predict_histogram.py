"""The predict page's histogram of confidences (`pipeline.prediction.page`)."""
from pipeline.prediction import page as predict_page


def test_the_histogram_labels_only_the_bins_that_hold_images(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(predict_page, "save_figure", lambda fig, path: drawn.append(fig))
    predict_page.write_predict_page(
        str(tmp_path), title="Predict", class_names=["cat", "dog"], per_class={"cat": 1290},
        histogram=[0, 0, 1, 3, 0, 8, 13, 21, 0, 1244], lowest=[], counts={"predicted": 1290},
        skipped=[])
    (fig,) = drawn
    labels = [text.get_text() for text in fig.axes[0].texts]
    assert [label for label in labels if label] == ["1", "3", "8", "13", "21", "1,244"]
