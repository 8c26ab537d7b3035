"""The experiment's live progress board: read from metrics.jsonl, redrawn only on a terminal."""

import io
import json
import time

from asr.job_board import JobBoard, board_rows, run_status


def write_metrics(run_dir, rows):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kin')


def test_status_reads_step_speed_and_last_dev_value(tmp_path):
    t0 = 1000.0
    write_metrics(tmp_path / "run", [
        {"kind": "train", "step": 25, "audio_seconds_per_second": 90.0, "time": t0},
        {"kind": "valid", "step": 50, "scores": {"zh-CN": {"cer": 0.8}, "mean": {"cer": 0.8}},
         "time": t0 + 12},
        {"kind": "train", "step": 75, "audio_seconds_per_second": 95.0, "time": t0 + 20}])
    s = run_status(tmp_path / "run", "zh-CN_cer")
    assert s == {"step": 75, "aps": 95.0, "updates_per_second": 2.5, "dev": 0.8}
    assert run_status(tmp_path / "missing", "zh-CN_cer")["step"] == 0  # not started yet


def test_rows_and_eta_from_the_measured_speed(tmp_path):
    write_metrics(tmp_path / "a", [
        {"kind": "train", "step": 0, "audio_seconds_per_second": 90.0, "time": 0.0},
        {"kind": "train", "step": 100, "audio_seconds_per_second": 90.0, "time": 50.0}])
    rows = board_rows([("[1/3] finetune 0.1 h seed 0", 400, tmp_path / "a", "zh-CN_cer",
                        time.perf_counter() - 65)], waiting_steps=400, workers=1)
    assert "step   100/400" in rows[0] and "dev zh-CN CER      -" in rows[0]
    assert rows[0].endswith("1:05")
    # 300 + 400 updates left at 2 updates per second
    assert rows[1].startswith("ETA ~6 min")
    two = board_rows([("[1/3] finetune 0.1 h seed 0", 400, tmp_path / "a", "zh-CN_cer",
                       time.perf_counter())], waiting_steps=500, workers=2)
    assert two[1].startswith("ETA ~3 min")  # 800 left at 4 updates per second: 200 s


def test_board_redraws_in_place_only_on_a_terminal():
    out = io.StringIO()
    live = JobBoard(live=True, stream=out)
    live.draw(["a", "b"])
    live.say("run finished")
    live.draw(["c"])
    live.done()
    text = out.getvalue()
    assert text.count("\x1b[2F\x1b[J") == 1 and text.count("\x1b[1F\x1b[J") == 1
    assert "run finished\n" in text
    plain = io.StringIO()
    log = JobBoard(live=False, stream=plain)
    log.draw(["a"])
    log.say("run finished")
    assert plain.getvalue() == "run finished\n"  # a log file gets the permanent lines only
    assert JobBoard(stream=io.StringIO()).live is False  # not a terminal
