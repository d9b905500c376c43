from datetime import UTC, datetime, timedelta

from newsloom.scheduler.timing import adapted_interval, next_poll_in, publishing_gap

NOW = datetime(2024, 5, 6, 12, tzinfo=UTC)


def every(minutes: float, n: int = 10):
    return [NOW - timedelta(minutes=minutes * i) for i in range(n)]


def test_gap_needs_two_dates():
    assert publishing_gap([]) is None
    assert publishing_gap([NOW, None]) is None
    assert publishing_gap(every(10)) == 600


def test_busy_feed_polled_more_often_within_bounds():
    assert adapted_interval(900, every(5)) == 300
    assert adapted_interval(900, every(1)) == 225  # not below interval / 4


def test_quiet_feed_polled_less_within_bounds():
    assert adapted_interval(900, every(40)) == 2400
    assert adapted_interval(900, every(60 * 24)) == 3600  # not above interval * 4


def test_undated_feed_keeps_its_interval():
    assert adapted_interval(900, [None, None]) == 900


def test_never_sooner_than_asked():
    assert next_poll_in(300) == 300
    assert next_poll_in(300, ttl=3600) == 3600
    assert next_poll_in(300, max_age=1200) == 1200
    assert next_poll_in(300, retry_after=7200, ttl=60) == 7200
