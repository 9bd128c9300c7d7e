"""The pipeline's hand-over between threads (imageio.ahead): order, bounded look-ahead, errors, stop."""
import threading
import time

import pytest

from memsr_deploy.imageio.ahead import Stopped, ahead


def test_items_come_in_order_and_the_worker_stays_at_most_depth_ahead():
    """Each item made but not taken is memory (a band of a 100 MP x2 output is 37 MB): with depth 1 the worker
    makes the next item while the consumer holds one, and no more."""
    made = []

    def items():
        for i in range(6):
            made.append(i)
            yield i
    for depth in (1, 2):
        made.clear()
        for i, item in enumerate(ahead(items(), depth=depth)):
            assert item == i
            time.sleep(0.05)   # time for the worker to run as far ahead as it may
            assert len(made) <= min(6, i + 1 + depth)
        assert made == list(range(6))


def test_an_error_in_the_worker_is_raised_in_the_consumer():
    def items():
        yield 1
        raise ValueError("bad band")
    a = ahead(items(), depth=1)
    assert next(a) == 1
    with pytest.raises(ValueError, match="bad band"):
        next(a)


def test_stop_from_another_thread_ends_a_waiting_consumer():
    """What a signal handler does to a running job: the consumer, waiting for a slow item, stops at once."""
    def items():
        yield 0
        time.sleep(0.6)
        yield 1
    a = ahead(items(), depth=1)
    assert next(a) == 0
    threading.Timer(0.1, a.stop).start()
    t = time.perf_counter()
    with pytest.raises(Stopped):
        next(a)
    assert time.perf_counter() - t < 0.5
