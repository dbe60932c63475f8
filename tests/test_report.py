"""`emovid report` on a real small run (real analyze output on the shared videos)."""

from html.parser import HTMLParser

import pandas as pd
import pytest

import emovid
from emovid.cli import main
from tests.helpers import shared_video


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.headings, self._in_h2 = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data)
            self._in_h2 = False


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("in")
    for name in ("single_face.mp4", "no_face.mp4"):
        (root / name).symlink_to(shared_video(name))
    (root / "broken.mp4").write_text("garbage")
    out = tmp_path_factory.mktemp("out")
    emovid.analyze(root, out, in_process=True, progress=False)
    return out


def test_report_writes_plots_summary_and_html(results):
    assert main(["report", str(results), "--smooth", "1"]) == 0
    folder = results / "_report"
    summary = pd.read_csv(folder / "summary.csv")
    assert set(summary["video_id"]) == {"single_face.mp4", "no_face.mp4"}
    face_rows = summary[summary["video_id"] == "single_face.mp4"]
    assert face_rows["person_id"].tolist() == ["(all)", "0"]  # the video, then its one person
    assert face_rows["seconds_with_face"].iloc[0] > 0 and isinstance(face_rows["dominant_emotion"].iloc[0], str)
    share_cols = [c for c in summary.columns if c.startswith("share_")]
    assert face_rows[share_cols].sum(axis=1).round(3).tolist() == [1.0, 1.0]
    assert summary.loc[summary["video_id"] == "no_face.mp4", "seconds_with_face"].tolist() == [0.0]

    page = (folder / "index.html").read_text()
    parsed = _Collect()
    parsed.feed(page)
    assert len(parsed.images) == 2 and all((folder / src).stat().st_size > 5000 for src in parsed.images)
    assert "broken.mp4" in page and "Failed or partial" in page  # listed, not plotted
    assert "No face was seen" in page
    # the report does not disturb reading the results folder
    assert set(pd.read_parquet(results)["video_id"]) == {"single_face.mp4", "no_face.mp4"}


def test_report_on_empty_folder(tmp_path):
    from emovid.report import build_report

    report = build_report(tmp_path)
    assert report.videos == 0 and report.index.is_file()
