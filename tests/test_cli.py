import json
import warnings

import pytest
from cvfake import make_release

from asr.cli import build_parser, main, parse_hours, parse_unit_choice
from asr.tokenizer import Tokenizer


def subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("command", subcommands())
def test_every_subcommand_has_help(command, capsys):
    """--help exits 0, and lists every flag of the subcommand with a help string of its own."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert sub.description or sub.format_usage()
    flags = [a for a in sub._actions if a.option_strings and a.dest != "help"]
    for action in flags:
        assert action.help and len(action.help) > 10, f"{command} {action.option_strings[0]}: no help"
        assert action.option_strings[-1] in out


def test_parse_hours():
    assert parse_hours("zh-CN=0.5,de=1") == {"zh-CN": 0.5, "de": 1.0}
    with pytest.raises(Exception, match="LOCALE=HOURS"):
        parse_hours("zh-CN:0.5")


def test_units_for_is_checked_before_any_work(tmp_path, capsys):
    assert parse_unit_choice(" zh-CN = pinyin") == ("zh-CN", "pinyin")
    with pytest.raises(Exception, match="LOCALE=KIND"):
        parse_unit_choice("zh-CN:pinyin")
    argv = ["prepare", "--cv-root", str(tmp_path / "absent"), "--locales", "fr",
            "--out", str(tmp_path / "data"), "--units-for", "fr=pinyin"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "units 'pinyin' for fr" in err and not (tmp_path / "data").exists()


def test_prepare_end_to_end(tmp_path, capsys):
    for locale in ("fr", "zh-CN"):
        make_release(tmp_path / "cv", locale, train=8, dev=2, test=2, speakers=(4, 1, 1))
    argv = ["prepare", "--cv-root", str(tmp_path / "cv"), "--locales", "fr,zh-CN",
            "--out", str(tmp_path / "data"), "--hours", "fr=0.001", "--workers", "1",
            "--units-for", "zh-CN=pinyin"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| fr | train |" in out and "| zh-CN | test |" in out
    for locale in ("fr", "zh-CN"):
        for split in ("train", "dev", "test"):
            rows = (tmp_path / "data" / locale / f"{split}.jsonl").read_text().splitlines()
            assert rows and all(json.loads(r)["locale"] == locale for r in rows)
            assert (tmp_path / "data" / locale / "feats" / split / "index.json").exists()
        assert (tmp_path / "data" / locale / "tokenizer.model").exists()
    assert Tokenizer.load(tmp_path / "data" / "zh-CN" / "tokenizer.model").kind == "pinyin"
    assert Tokenizer.load(tmp_path / "data" / "fr" / "tokenizer.model").kind == "char"
    fr_hours = sum(json.loads(r)["duration"] for r in
                   (tmp_path / "data" / "fr" / "train.jsonl").read_text().splitlines()) / 3600
    assert fr_hours < 0.0015


def test_errors_are_one_line_not_tracebacks(tmp_path, capsys):
    assert main(["prepare", "--cv-root", str(tmp_path / "nowhere"), "--locales", "de",
                 "--out", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err
