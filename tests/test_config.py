"""Options declared once: the CLI, emovid.analyze and the config types take them from one declaration."""

import inspect
from dataclasses import fields

import pytest

import emovid
from emovid.cli import build_parser
from emovid.config import AnalyzeConfig, RunOptions, split_options

# (CLI flag and text, the same as an API keyword and value); each is refused by both with one reason
REFUSED = [
    (["--fps", "0"], {"fps": 0.0}, "fps: expected a number > 0 and <= 1000"),
    (["--fps", "nan"], {"fps": float("nan")}, "fps: expected a number > 0"),
    (["--segment-s", "0.5"], {"segment_s": 0.5}, "segment_s: expected a number >= 1 (or 0)"),
    (["--workers", "1.5"], {"workers": 1.5}, "workers: expected a whole number"),
    (["--stall-timeout", "-1"], {"stall_timeout_s": -1.0}, "stall_timeout_s: expected a number >= 0"),
    (["--prior", "uniform"], {"prior": "uniform"}, "prior: expected ferplus, balanced or a number"),
    (["--max-side", "32"], {"max_side": 32}, "max_side: expected a whole number >= 64"),
    (["--precision", "int4"], {"precision": "int4"}, "precision: expected one of auto, int8, fp32"),
]


@pytest.mark.parametrize("argv, keywords, reason", REFUSED)
def test_the_cli_and_the_api_refuse_the_same_values_with_the_same_reason(argv, keywords, reason, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["analyze", "x", "--out", "o", *argv])
    assert exc.value.code == 2
    assert reason.split(": ", 1)[1] in capsys.readouterr().err  # the usage line gives the check's reason
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        split_options(keywords)


@pytest.mark.parametrize("argv, keywords", [
    (["--fps", "1e3"], {"fps": 1000.0}),  # once accepted by --fps but refused by --segment-s
    (["--segment-s", "1e3"], {"segment_s": 1000.0}),
    (["--segment-s", "0"], {"segment_s": 0.0}),  # 0: never split, in the CLI and the API alike
    (["--every-frame"], {"fps": None}),
    (["--no-track", "--no-persons"], {"track": False, "persons": False}),
    (["--prior", "balanced"], {"prior": 1.0}),
])
def test_the_cli_gives_the_api_the_values_it_would_take(argv, keywords):
    args = build_parser().parse_args(["analyze", "x", "--out", "o", *argv])
    given = {f.name: getattr(args, f.name) for cls in (AnalyzeConfig, RunOptions) for f in fields(cls)
             if hasattr(args, f.name) and f.name != "verbose"}
    assert given == keywords  # unset flags stay out: the declared defaults apply
    assert split_options(given) == split_options(keywords)


def test_every_option_is_a_flag_and_a_keyword_with_its_declared_default():
    help_text = build_parser()._subparsers._group_actions[0].choices["analyze"].format_help()
    parameters = inspect.signature(emovid.analyze).parameters
    for cls in (AnalyzeConfig, RunOptions):
        for f in fields(cls):
            assert parameters[f.name].default == f.default
            if f.name != "verbose":  # -v/--verbose is the emovid command's own, for every subcommand
                assert f.metadata["help"].split(" (")[0][:30] in " ".join(help_text.split())
            assert f.name in emovid.analyze.__doc__
    with pytest.raises(TypeError, match="unknown option.*frames_per_second"):
        emovid.analyze("x", "o", frames_per_second=2)


def test_result_settings_and_run_options_are_separate_types():
    settings = AnalyzeConfig(precision="fp32").settings("m:1", ("a", "b"), "0" * 16, "opencv")
    run_only = {f.name for f in fields(RunOptions)}
    assert not run_only & set(settings)  # batch size, segments, workers... never reach the settings hash


def test_settings_record_the_precision_that_runs_never_auto():
    from emovid.config import settings_hash

    with pytest.raises(ValueError, match="resolve 'auto'"):
        AnalyzeConfig().settings("m:1", ("a", "b"), "0" * 16, "opencv")
    hashes = {settings_hash(AnalyzeConfig(precision=p).settings("m:1", ("a", "b"), "0" * 16, "opencv"))
              for p in ("int8", "fp32")}
    assert len(hashes) == 2
    assert AnalyzeConfig().with_precision(earlier="fp32").precision == "fp32"  # a folder's earlier choice
    assert AnalyzeConfig().with_precision(use_gpu=True, earlier="int8").precision == "fp32"  # int8 can't run there


def test_the_reference_lists_every_flag():
    from pathlib import Path

    reference = (Path(__file__).parents[1] / "docs" / "analyze.md").read_text()
    analyze = build_parser()._subparsers._group_actions[0].choices["analyze"]
    flags = [o for a in analyze._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
    assert [f for f in flags if f"`{f}" not in reference] == []
