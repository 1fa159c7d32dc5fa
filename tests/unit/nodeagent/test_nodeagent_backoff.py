"""CrashLoopBackOff as kubelet's doBackOff + flowcontrol.Backoff, driven by a fake clock."""
from nodeagent.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def crash_loop(backoff: Backoff, clock: Clock, runs: int, run_for: float = 0.0) -> list[float]:
    """Simulate a container that exits `run_for` s after each start; returns the wait before each restart."""
    waits, finished = [], clock.now
    for _ in range(runs):
        wait = backoff.remaining("pod/c", finished)
        clock.now += wait
        assert backoff.remaining("pod/c", finished) == 0
        backoff.next("pod/c", finished)
        waits.append(wait)
        clock.now += run_for
        finished = clock.now
    return waits


def test_first_restart_is_immediate_then_doubles_to_the_cap():
    clock = Clock()
    assert crash_loop(Backoff(10, 300, clock), clock, 9) == [0, 10, 20, 40, 80, 160, 300, 300, 300]


def test_configured_initial_and_max():
    clock = Clock()
    assert crash_loop(Backoff(1, 4, clock), clock, 6, run_for=0.1) == [0, 1, 2, 4, 4, 4]


def test_wait_is_measured_from_the_finish_time():
    clock = Clock()
    b = Backoff(10, 300, clock)
    b.next("k", clock.now)           # first restart
    finished = clock.now + 3         # it ran 3 s
    clock.now = finished + 4         # and the agent looks 4 s after it ended
    assert b.remaining("k", finished) == 6
    assert b.current("k") == 10


def test_a_container_that_ran_ten_minutes_starts_over():
    clock = Clock()
    b = Backoff(10, 300, clock)
    crash_loop(b, clock, 5)
    assert b.current("pod/c") == 160   # the wait before the next restart
    clock.now += 601                 # ran more than 2 x max
    finished = clock.now
    assert b.remaining("pod/c", finished) == 0
    b.next("pod/c", finished)
    assert b.current("pod/c") == 10


def test_gc_and_forget():
    clock = Clock()
    b = Backoff(10, 300, clock)
    b.next("uid1/a", clock.now)
    b.next("uid2/a", clock.now)
    b.forget("uid1/")
    assert b.current("uid1/a") == 0 and b.current("uid2/a") == 10
    clock.now += 601
    b.gc()
    assert b.current("uid2/a") == 0
