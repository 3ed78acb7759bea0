"""The ``optio`` command without a server: `optio watch`'s decisions state by state, the text
of states (summary line, runs table), and argument checks."""

from __future__ import annotations

import io
import json
import time

import pytest

from optio import config
from optio.cli.commands import (
    _check_run,
    build_parser,
    items_media,
    jobs,
    main,
    per_minute,
    request_for,
)
from optio.cli.format import active_seconds, duration, rate_text, runs_table, summary
from optio.cli.watch import EXIT_ENDED, EXIT_OK, Display, Follower, Throughput


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


def json_lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_state_older_than_one_shown_is_skipped():
    f, out, _ = follower(as_json=True)
    f.take(state(processed=50, seq=5))
    assert f.take(state(processed=30, seq=3)) is None  # late: would move the display back
    f.take(state(processed=50, seq=5))  # the same seq again is not older
    f.take(state(processed=60, seq=6))
    assert [s["seq"] for s in json_lines(out)] == [5, 5, 6]


def test_a_late_running_state_does_not_revive_a_finished_run():
    f, out, _ = follower()
    assert f.take(state(processed=100, running=False, status="completed", seq=9)) is None
    assert f.take(state(processed=90, seq=8)) is None  # published before the final one
    assert f.run_id is None
    assert out.getvalue().startswith("No run is running (last: run r1 completed")
    assert "Watching" not in out.getvalue()


def test_seq_is_tracked_per_run_and_a_late_state_of_an_older_run_is_skipped():
    f, _, err = follower(as_json=True)
    f.take(state(run_id="r1", processed=10, seq=40))
    f.take(state(run_id="r1", processed=100, running=False, status="stopped", seq=41))
    f2, out, err = follower(as_json=True)
    f2.take(state(run_id="r2", seq=2, startedAt=2_000_000))  # a new run starts at seq 2
    assert f2.take(state(run_id="r1", seq=41, startedAt=1_000_000)) is None  # late, older run
    assert f2.take(state(run_id="r2", seq=3, startedAt=2_000_000)) is None
    assert err.getvalue() == ""
    assert [s["runId"] for s in json_lines(out)] == ["r2", "r2"]


def test_states_without_seq_are_all_taken():
    f, out, _ = follower(as_json=True)
    f.take(state(processed=50))
    f.take(state(processed=30))
    assert len(out.getvalue().splitlines()) == 2


def test_a_paused_run_is_still_followed_and_says_paused():
    f, out, err = follower()
    assert f.take(state(processed=10, status="paused", seq=4, pausedAt=1_010_000)) is None
    assert f.take(state(processed=10, seq=5, pausedMs=30_000)) is None
    final = state(processed=100, running=False, status="completed", seq=6, pausedMs=30_000)
    assert f.take(final) == EXIT_OK
    lines = out.getvalue().splitlines()
    assert lines[0] == "Watching run r1: 100 jobs at 1,200/min (paused)"
    assert "PAUSED · processed 10/100 (10.0%)" in lines[1]
    assert "PAUSED" not in lines[2]  # resumed: shown at once, the status changed
    assert lines[-1] == "Run r1 completed: 100 jobs processed in 35 s."  # 65 s minus 30 paused
    assert err.getvalue() == ""


def test_the_measured_rate_and_eta_leave_paused_time_out():
    display = Display(io.StringIO(), tty=False)
    display.show(state(processed=0, x=1000), now=100.0)
    display.show(state(processed=100, x=1000), now=110.0)  # 600/min
    paused = state(processed=100, x=1000, status="paused")
    display.show(paused, now=110.0)
    display.show(paused, now=170.0)  # a minute later: still 600/min, and no ETA
    assert display.numbers(paused, display.clock.read(170.0)) == (
        "PAUSED · processed 100/1,000 (10.0%) · enqueued 100 · 600 jobs/min"
    )
    display.show(state(processed=100, x=1000), now=171.0)  # resumed
    resumed = state(processed=110, x=1000)
    display.show(resumed, now=172.0)
    assert display.numbers(resumed, display.clock.read(172.0)) == (
        "processed 110/1,000 (11.0%) · enqueued 110 · 600 jobs/min · ETA 1 min 29 s"
    )


def test_active_seconds_exclude_paused_time():
    base = {"startedAt": 1_000_000, "finishedAt": None, "pausedMs": 0, "pausedAt": None}
    assert active_seconds(base, now=1_060_000) == 60
    assert active_seconds({**base, "pausedMs": 20_000}, now=1_060_000) == 40
    paused = {**base, "pausedMs": 20_000, "pausedAt": 1_050_000}
    assert active_seconds(paused, now=1_060_000) == 30  # the current pause counts too
    done = {**base, "finishedAt": 1_090_000, "pausedMs": 5_000}
    assert active_seconds(done, now=9_999_999) == 85
    assert active_seconds({"startedAt": None}) == 0


def test_summary_of_a_paused_run():
    paused = state(processed=40, status="paused", heldBack=True, rateNow=3, failed=2, retried=2)
    assert summary(paused) == (
        "run r1 paused: processed 40/100 (40.0%), enqueued 40, rate 1,200/min, failed 2, retried 2"
    )


def test_a_held_back_run_says_why():
    held = state(processed=40, heldBack=True, heldBackBy="scheduler", rateEnqueued=900)
    assert summary(held).endswith(", held back: enqueuing 900/min (the scheduler is behind)")
    held = {**held, "heldBackBy": "workers"}
    assert summary(held).endswith("(the workers are behind)")
    held = {**held, "heldBackBy": "cap"}
    assert summary(held).endswith("(OPTIO_MAX_OUTSTANDING jobs wait in the broker)")


def test_the_runs_table_is_aligned():
    started = 1_700_000_000_000
    runs = [
        state(
            run_id="5f0c2a91be3d",
            status="paused",
            processed=1_234,
            x=10_000,
            startedAt=started,
            pausedAt=started + 100_000,
            pausedMs=0,
        ),
        {
            **state(run_id="0a1b2c3d4e5f", running=False, status="completed", processed=5),
            "x": 5,
            "xTotal": 5,
            "failed": 12,
            "yMinute": 0.5,
            "startedAt": started - 3_600_000,
            "finishedAt": started - 3_600_000 + 65_000,
        },
    ]
    local = [
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t / 1000))
        for t in (started, started - 3_600_000)
    ]
    assert runs_table(runs, now=started + 400_000) == [
        "RUN           STATUS        PROCESSED  FAILED  Y/MIN  DURATION    STARTED",
        f"5f0c2a91be3d  paused     1,234/10,000       0  1,200  1 min 40 s  {local[0]}",
        f"0a1b2c3d4e5f  completed           5/5      12    0.5  1 min 05 s  {local[1]}",
    ]


@pytest.mark.parametrize("text, value", [("100", 100), ("1,500", 1500), ("1,000,000", 10**6)])
def test_x_accepts_whole_numbers_with_thousands_separators(text, value):
    assert jobs(text) == value


@pytest.mark.parametrize("text, value", [("60", 60), ("0.5", 0.5), ("1,500.5", 1500.5)])
def test_y_accepts_positive_numbers(text, value):
    assert per_minute(text) == value


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "0", "60"],
        ["run", "-5", "60"],
        ["run", "1.5", "60"],
        ["run", "1,50", "60"],
        ["run", "ten", "60"],
        ["run", "10", "0"],
        ["run", "10", "-1"],
        ["run", "10", "nan"],
        ["run", "10", "inf"],
        ["run", "10"],
        ["run", "10", "60", "-y", "60"],
        ["run", "10", "60", "--csv"],
        ["run", "--items", "items.jsonl"],
        ["run", "--items", "items.jsonl", "60"],
        ["run", "--items", "items.jsonl", "10", "-y", "60"],
        ["run", "--items", "/nonexistent/items.csv", "-y", "60"],
        ["update"],
        ["update", "--x", "0"],
        ["runs", "--limit", "0"],
        ["runs", "--limit", "101"],
        ["runs", "--active", "--limit", "5"],
        ["run", "10", "60", "--deadline", "60"],
        ["run", "10", "-y", "60", "--deadline", "60"],
        ["run", "10", "--deadline", "0"],
        ["run", "10", "--deadline", "tomorrow"],
        ["run", "10", "--deadline", "2026-12-05T06:00:00"],
        ["run", "10", "60", "--weight", "0"],
        ["run", "10", "60", "--max-in-flight", "0"],
        ["run", "10", "60", "--max-in-flight", "1.5"],
        ["pause", "a", "b"],
        ["retry-failed"],
        ["results"],
        ["results", "abc", "--failed", "--all"],
        ["results", "abc", "--json"],
        ["status", "--url", "localhost:3000"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_2_before_anything_is_sent(argv, capsys, monkeypatch):
    # should anything be sent, it goes nowhere
    monkeypatch.setattr(
        config, "SETTINGS", config.SETTINGS.model_copy(update={"url": "http://127.0.0.1:9"})
    )
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_each_command_makes_its_api_call():
    def request(*argv):
        return request_for(build_parser().parse_args(list(argv)))

    assert request("run", "1,500", "60") == ("POST", "/api/run", {"x": 1500, "y": 60}, None)
    assert request("run", "5", "0.5")[2] == {"x": 5, "y": 0.5}
    assert request("run", "5", "-y", "30")[2] == {"x": 5, "y": 30}
    assert request("update", "--y", "120") == ("PUT", "/api/run", {"y": 120}, None)
    assert request("pause")[:2] == ("POST", "/api/pause")
    assert request("resume")[:2] == ("POST", "/api/resume")
    assert request("stop")[:2] == ("POST", "/api/stop")
    assert request("status")[:2] == ("GET", "/api/status")
    assert request("runs", "--limit", "5", "--before", "abc") == (
        "GET",
        "/api/runs",
        None,
        {"limit": 5, "before": "abc"},
    )
    assert request("retry-failed", "a/b")[1] == "/api/runs/a%2Fb/retry-failed"


def test_the_controls_name_a_run_when_given_one():
    def request(*argv):
        return request_for(build_parser().parse_args(list(argv)))

    run_id = "0123456789ab"
    for verb in ("pause", "resume", "stop"):
        assert request(verb, run_id) == ("POST", f"/api/runs/{run_id}/{verb}", None, None)
    assert request("update", run_id, "--x", "7") == ("PUT", f"/api/runs/{run_id}", {"x": 7}, None)
    assert request("update", "a/b", "--y", "1")[1] == "/api/runs/a%2Fb"
    assert request("runs", "--active") == ("GET", "/api/runs", None, {"active": 1})


def test_a_run_takes_a_deadline_a_weight_and_max_in_flight():
    def request(*argv):
        args = build_parser().parse_args(list(argv))
        _check_run(args)
        return request_for(args)[2]

    assert request("run", "100", "--deadline", "3,600", "--weight", "0.5") == {
        "x": 100,
        "deadline": 3600,
        "weight": 0.5,
    }
    assert request("run", "5", "--deadline", "2026-12-05T06:00:00Z", "--max-in-flight", "3") == {
        "x": 5,
        "deadline": "2026-12-05T06:00:00Z",
        "maxInFlight": 3,
    }
    assert request("run", "5", "60", "--weight", "2") == {"x": 5, "y": 60, "weight": 2}


def test_an_items_file_is_ndjson_unless_it_is_csv():
    assert items_media("people.csv", False) == items_media("PEOPLE.CSV", False) == "text/csv"
    assert items_media("people.jsonl", False) == "application/x-ndjson"
    assert items_media("-", False) == "application/x-ndjson"
    assert items_media("-", True) == items_media("people.txt", True) == "text/csv"


def test_a_throttled_run_says_its_effective_rate():
    from optio.cli.format import summary as line

    throttled = state(processed=10, rateNow=300.0, throttled=7)
    assert "throttled 7 times: rate now 300/min" in line(throttled)
    follower_, out, _ = follower()
    follower_.take(throttled)
    follower_.take({**throttled, "running": False, "status": "stopped", "seq": 99})
    assert "THROTTLED: rate now 300/min" in out.getvalue()
    assert "throttled" not in line(state(processed=10, rateNow=1200.0, throttled=7))


def test_watch_takes_a_run_id_to_follow():
    assert build_parser().parse_args(["watch"]).run_id is None
    args = build_parser().parse_args(["watch", "0123456789ab", "--once", "--json"])
    assert (args.run_id, args.once, args.json) == ("0123456789ab", True, True)
