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
    # the man's one person has episodes that cover his time on screen, in order, with no overlap
    episodes = pd.read_csv(folder / "episodes.csv")
    assert set(episodes["video_id"]) == {"single_face.mp4"} and set(episodes["person_id"]) == {0}
    assert (episodes["start_s"].diff().dropna() > 0).all() and (episodes["duration_s"] >= 1).all()
    assert episodes["duration_s"].sum() <= face_rows["seconds_with_face"].iloc[0] + 1

    page = (folder / "index.html").read_text()
    parsed = _Collect()
    parsed.feed(page)
    plots = [src for src in parsed.images if src.endswith(".png")]
    assert len(plots) == 2 and all((folder / src).stat().st_size > 5000 for src in plots)
    assert all((folder / src).is_file() for src in parsed.images)  # every file the page references exists
    assert "broken.mp4" in page and "Failed or partial" in page  # listed, not plotted
    assert "No face was seen" in page
    assert "emotion episodes" in page
    # the report does not disturb reading the results folder
    assert set(pd.read_parquet(results)["video_id"]) == {"single_face.mp4", "no_face.mp4"}


def test_report_on_empty_folder(tmp_path):
    from emovid.report.page import build_report

    report = build_report(tmp_path)
    assert report.videos == 0 and report.index.is_file()


def test_report_shows_a_thumbnail_per_track_and_each_persons_strip(tmp_path):
    """Two people in two shots: each track gets its own face thumbnail; persons get strips."""
    from tests.helpers import people_heads, shots_video

    heads = people_heads()
    (tmp_path / "in").mkdir()
    shots_video(tmp_path / "in" / "two.mp4", [[(heads[0], (80, 60))], [(heads[1], (300, 80))]])
    (tmp_path / "in" / "gone.mp4").symlink_to(shared_video("single_face.mp4"))
    out = tmp_path / "out"
    emovid.analyze(tmp_path / "in", out, in_process=True, progress=False, fps=None)
    (tmp_path / "in" / "gone.mp4").unlink()  # moved after analysis: its report has no thumbnails
    report = emovid.build_report(out)
    page = report.index.read_text()
    parsed = _Collect()
    parsed.feed(page)
    rows = pd.read_parquet(out / "two.mp4.parquet")
    tracks = sorted(rows["track_id"].dropna().unique())
    assert len(tracks) == 2 and rows["person_id"].nunique() == 2
    thumbs = sorted({src for src in parsed.images if src.startswith("thumbs/") and "two.mp4" in src})
    assert len(thumbs) == len(tracks) and all((report.folder / t).is_file() for t in thumbs)
    import cv2

    first = cv2.imread(str(report.folder / thumbs[0]))
    assert first.shape[0] == 96 and first.std() > 10  # a face, not a blank patch
    assert all((report.folder / src).is_file() for src in parsed.images)
    assert page.count("<svg class='strip'") == rows["person_id"].nunique() + 1  # + the gone video's person
    assert "not found: face thumbnails left out" in page


def test_report_lists_photos_with_their_faces(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "group.jpg"), cv2.imread(str(shared_video("multi_face.jpg"))))
    cv2.imwrite(str(tmp_path / "empty.png"), cv2.imread(str(shared_video("multi_face.jpg")))[:40, :40])
    cv2.imwrite(str(tmp_path / "later.jpg"), cv2.imread(str(shared_video("single_face.jpg"))))
    out = tmp_path / "out"
    emovid.analyze(tmp_path, out, in_process=True, progress=False)
    (tmp_path / "later.jpg").write_bytes(b"overwritten since")
    report = emovid.build_report(out)
    assert (report.videos, report.photos) == (0, 3)
    assert "no longer reads" in report.index.read_text()
    parsed = _Collect()
    parsed.feed(report.index.read_text())
    assert len([s for s in parsed.images if "group.jpg" in s]) == 5 and not any(s.endswith(".png") for s in parsed.images)
    assert "no face found" in report.index.read_text()


def test_report_marks_where_faces_are_too_poor_to_trust(tmp_path):
    """The sample's woman, blurred from 2 s to 4 s: the strip marks that stretch as low quality."""
    import cv2
    from pathlib import Path

    from tests.helpers import write_video

    cap = cv2.VideoCapture(str(Path(__file__).parents[1] / "samples" / "sample.mp4"))
    fps, frames = cap.get(cv2.CAP_PROP_FPS), []
    while len(frames) < 6 * fps and (read := cap.read())[0]:
        frames.append(read[1])
    blurred = [cv2.GaussianBlur(f, (0, 0), 12) if 2 * fps <= i < 4 * fps else f for i, f in enumerate(frames)]
    video = write_video(tmp_path / "mixed.mp4", blurred, fps=fps)
    emovid.analyze(video, tmp_path / "out", in_process=True, progress=False)
    df = emovid.read_results(tmp_path / "out")
    blur = df["timestamp_s"].between(2.3, 3.7)  # inside the blurred stretch, away from its edges
    assert df.loc[blur, "quality"].max() < 0.5 < df.loc[~df["timestamp_s"].between(1.9, 4.1), "quality"].min()
    page = emovid.build_report(tmp_path / "out").index.read_text()
    assert page.count("class='low-quality'") == 1 and "low quality (under 0.5)" in page
