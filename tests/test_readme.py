"""The README's "Analyse results" snippets run as written against a real results folder."""

import re
from pathlib import Path

import pytest

import emovid
from tests.helpers import face_video

README = Path(__file__).resolve().parents[1] / "README.md"


def analyse_snippets() -> list[str]:
    text = README.read_text()
    section = text.split("### Analyse results", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_pandas_duckdb_polars_snippets():
    joined = "\n".join(analyse_snippets())
    for needle in ("pd.read_parquet", "duckdb.sql", "read_parquet('results/**/*.parquet')", "pl.read_parquet"):
        assert needle in joined


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder holding ``results/`` from a real run over two videos (one in a subfolder)."""
    root = tmp_path_factory.mktemp("readme")
    (root / "in" / "sub").mkdir(parents=True)
    face_video(root / "in" / "sub" / "a.mp4", n_frames=8)
    face_video(root / "in" / "b.mp4", n_frames=6)
    emovid.analyze(root / "in", root / "results", in_process=True, progress=False)
    return root


@pytest.mark.parametrize("index", range(4))
def test_snippet_runs(index, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    exec(compile(analyse_snippets()[index], f"README snippet {index}", "exec"), {})
