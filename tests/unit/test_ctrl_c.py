"""A Ctrl-C that another handler answers (Ray Tune's) is still noticed."""

import os
import signal
import threading

from pipelines.ctrl_c import noticing_signals


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
    assert seen.ctrl_c and not quiet.ctrl_c
    assert signal.set_wakeup_fd(-1) == -1  # the wakeup fd before is back


def test_outside_the_main_thread_nothing_is_noticed():
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(noticing_signals().__enter__().ctrl_c))
    worker.start()
    worker.join()
    assert outcome == [False]
