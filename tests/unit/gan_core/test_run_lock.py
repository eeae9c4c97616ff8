"""One `ganpipe train --local` of a run folder at a time: the OS lock on the folder."""

import subprocess
import sys

import pytest

from gan_core.outputs.run_lock import RunBusy, training_lock

HOLD_THE_LOCK = """
import sys, time
from pathlib import Path
from gan_core.outputs.run_lock import training_lock
with training_lock(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(60)
"""


def test_a_second_local_training_of_a_folder_is_refused_until_the_first_process_ends(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(RunBusy, match=f"is in use by process {holder.pid}"), training_lock(tmp_path):
            pass
    finally:
        holder.kill()  # killed, not released: the operating system drops the lock with the process
        holder.wait(timeout=10)
    with training_lock(tmp_path):
        pass
