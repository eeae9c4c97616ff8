"""A Ctrl-C that another handler answers (Ray Tune's) is still noticed; SIGTERM is answered as Ctrl-C."""

import os
import signal
import threading

from pipelines.runtime.signals import noticing_signals, sigterm_as_ctrl_c


def test_a_ctrl_c_answered_by_another_handler_is_noticed():
    answered = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: answered.append(signum))
    try:
        with noticing_signals() as quiet:
            pass
        with noticing_signals() as seen:
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)
    assert answered == [signal.SIGINT]
    assert seen.stop_signal == signal.SIGINT and quiet.stop_signal is None
    assert signal.set_wakeup_fd(-1) == -1  # the wakeup fd before is back


def test_outside_the_main_thread_nothing_is_noticed():
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(noticing_signals().__enter__().stop_signal))
    worker.start()
    worker.join()
    assert outcome == [None]


def test_sigterm_is_answered_by_the_ctrl_c_handler_and_seen_as_sigterm():
    answered = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: answered.append(signum))
    term_before = signal.getsignal(signal.SIGTERM)
    try:
        with noticing_signals() as seen, sigterm_as_ctrl_c():
            os.kill(os.getpid(), signal.SIGTERM)
        with noticing_signals() as ctrl_c:
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)
    assert answered == [signal.SIGINT, signal.SIGINT]  # Ray Tune's handler saves the search on either
    assert seen.stop_signal == signal.SIGTERM and ctrl_c.stop_signal == signal.SIGINT
    assert signal.getsignal(signal.SIGTERM) is term_before
