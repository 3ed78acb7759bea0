"""`optio watch`'s decisions, state by state, without a server."""

from __future__ import annotations

import io

import pytest

from optio.cli import (
    EXIT_ENDED,
    EXIT_OK,
    Follower,
    Throughput,
    duration,
    main,
    rate_text,
    summary,
)


def state(run_id="r1", running=True, status="running", processed=0, x=100, **extra) -> dict:
    return {
        "running": running,
        "xTotal": x,
        "yMinute": 1200.0,
        "enqueued": processed,
        "processed": processed,
        "failed": 0,
        "runId": run_id,
        "status": status,
        "startedAt": 1_000_000,
        "finishedAt": None if running else 1_065_000,
        **extra,
    }


IDLE = {**state(run_id=None, running=False, status="idle", x=0), "startedAt": None}


def follower(once=False, as_json=False) -> tuple[Follower, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Follower(out, err, once, as_json), out, err


def test_waits_for_the_next_run_then_exits_0_when_it_completes():
    f, out, err = follower()
    assert f.take(IDLE) is None
    assert f.take(IDLE) is None  # said once only
    assert f.take(state(processed=10)) is None
    assert f.take(state(processed=100, running=False, status="completed")) == EXIT_OK
    lines = out.getvalue().splitlines()
    assert lines[0] == "No run is running. Waiting for the next one; Ctrl-C to quit."
    assert lines[1] == "Watching run r1: 100 jobs at 1,200/min"
    assert lines[-1] == "Run r1 completed: 100 jobs processed in 1 min 05 s."
    assert err.getvalue() == ""


def test_a_finished_run_at_start_is_not_followed():
    f, out, _ = follower()
    assert f.take(state(running=False, status="completed", processed=100)) is None
    assert out.getvalue().startswith("No run is running (last: run r1 completed: processed 100/100")


def test_a_stopped_run_exits_1_with_the_counts_on_stderr():
    f, _, err = follower()
    f.take(state(processed=5, x=10_000))
    assert f.take(state(processed=7, x=10_000, running=False, status="stopped")) == EXIT_ENDED
    assert err.getvalue() == "optio watch: run r1 was stopped at 7 of 10,000 jobs processed\n"


def test_another_run_replacing_ours_exits_1():
    f, _, err = follower()
    f.take(state(run_id="r1"))
    assert f.take(state(run_id="r2")) == EXIT_ENDED
    assert "run r1 was replaced by run r2" in err.getvalue()


def test_once_prints_one_summary_line():
    f, out, _ = follower(once=True)
    assert f.take(state(processed=1234, x=5000)) == EXIT_OK
    assert out.getvalue() == (
        "run r1 running: processed 1,234/5,000 (24.6%), enqueued 1,234, rate 1,200/min\n"
    )
    f, out, _ = follower(once=True)
    assert f.take(IDLE) == EXIT_OK
    assert out.getvalue() == "idle: no run has been started\n"


def test_json_prints_every_state_as_one_line():
    f, out, _ = follower(as_json=True)
    f.take(state(processed=1))
    f.take(state(processed=100, running=False, status="completed"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith('{"running":false,')


def test_throughput_is_measured_over_the_window():
    rate = Throughput(window=10)
    rate.add(0.0, 0)
    assert rate.per_minute(0.5) is None
    for second in range(1, 21):
        rate.add(float(second), second * 20)  # 20 jobs per second
    assert rate.per_minute(20.0) == pytest.approx(1200)
    assert len(rate.samples) <= 11


def test_formats():
    assert duration(5) == "5 s" and duration(65) == "1 min 05 s" and duration(3720) == "1 h 02 min"
    assert rate_text(1200) == "1,200" and rate_text(0.5) == "0.5" and rate_text(60) == "60"
    assert summary(IDLE) == "idle: no run has been started"


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "watch" in capsys.readouterr().err
