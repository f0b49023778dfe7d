from __future__ import annotations

import threading

import pytest

from connector_local.runtime import LocalFunction
from connector_local.ticker import ScheduleTicker, parse_rate


@pytest.mark.parametrize(
    "expression, seconds",
    [("rate(5 minutes)", 300), ("rate(1 minute)", 60), ("rate(1 hour)", 3600), ("rate(2 hours)", 7200),
     ("rate(1 day)", 86400), (" rate( 3 days ) ", 259200)],
)
def test_rate_expressions_become_seconds(expression, seconds):
    assert parse_rate(expression) == seconds


def test_cron_expression_is_refused_with_a_hint_to_give_an_interval():
    with pytest.raises(ValueError, match=r"cron\(0 6 \* \* \? \*\).*interval in seconds"):
        parse_rate("cron(0 6 * * ? *)")


@pytest.mark.parametrize("expression", ["rate(0 minutes)", "rate(5 seconds)", "rate(five minutes)", "every 5m"])
def test_malformed_rate_is_refused(expression):
    with pytest.raises(ValueError):
        parse_rate(expression)


def test_tick_delivers_the_schedule_input_itself_as_the_event():
    events = []
    function = LocalFunction("PollerFunction", lambda event, context: events.append(event) or "done", 300, 512)

    assert ScheduleTicker(function, '{"job": "poll"}', 300).tick() == "done"
    ScheduleTicker(function, {"job": "maintenance"}, 86400).tick()

    assert events == [{"job": "poll"}, {"job": "maintenance"}]


def test_run_forever_ticks_at_once_then_every_interval_and_survives_failures():
    calls = []
    enough = threading.Event()

    def handler(event, context):
        calls.append(event)
        if len(calls) >= 3:
            enough.set()
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    ticker = ScheduleTicker(LocalFunction("PollerFunction", handler, 300, 512), {"job": "poll"}, 0.02)
    stop = threading.Event()
    thread = threading.Thread(target=ticker.run_forever, args=(stop,), daemon=True)
    thread.start()

    assert enough.wait(5)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert ticker.failures == 1 and ticker.ticks >= 3
