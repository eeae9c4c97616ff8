"""Helper processes started under `children_deaf_to` outlive the stop signals sent to the command's group."""

import contextlib
import signal
import subprocess
import sys

from pipelines.runtime.signals import children_deaf_to

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_child_started_inside_the_block_ignores_sigint_and_sigterm():
    mask_before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    with children_deaf_to():
        shielded = subprocess.Popen(SLEEPER)
    plain = subprocess.Popen(SLEEPER)
    try:
        assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == mask_before  # this process hears them again
        for child in (shielded, plain):
            child.send_signal(signal.SIGINT)
            child.send_signal(signal.SIGTERM)
        assert plain.wait(timeout=10) != 0
        with contextlib.suppress(subprocess.TimeoutExpired):
            shielded.wait(timeout=2)
        assert shielded.poll() is None, "the shielded child died of a stop signal"
    finally:
        shielded.kill()  # SIGKILL cannot be blocked: the owner can always end it
        shielded.wait(timeout=10)
        plain.kill()
        plain.wait(timeout=10)
