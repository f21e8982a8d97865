"""``python -m tests.kill_at_checkpoint K R society-env-args...``: run ``society-env`` and SIGKILL it at a
chosen point of the run, the same point on any machine: after it wrote its K-th checkpoint, R steps
later, in the middle of recording step R+1 (half a line of its action record written and flushed, its events
and snapshot not). R = 0 kills it right after the checkpoint. A kill by deadline instead lands wherever the
machine's speed puts it, and on a fast machine after the run has finished."""

from __future__ import annotations

import os
import signal
import sys

from society_env.app import checkpoints
from society_env.app.cli import main
from society_env.recording.format import RecordingWriter


def kill_at(checkpoint: int, steps_after: int) -> None:
    """Patch the checkpoint writer and the recorder so that the process kills itself at that point."""
    saved = {"checkpoints": 0, "steps": 0}
    save_checkpoint, record_step = checkpoints.save_checkpoint, RecordingWriter.record_step

    def kill() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def counted_save(run_dir, state) -> None:
        save_checkpoint(run_dir, state)
        saved["checkpoints"] += 1
        if saved["checkpoints"] == checkpoint and steps_after == 0:
            kill()

    def counted_step(self, actions, world, *args, **kwargs) -> None:
        if saved["checkpoints"] >= checkpoint:
            saved["steps"] += 1
            if saved["steps"] == steps_after + 1:
                self._files["actions"].write(b'{"step":%d,"acti' % (world.step - 1))
                self.flush()
                kill()
        record_step(self, actions, world, *args, **kwargs)

    checkpoints.save_checkpoint = counted_save
    RecordingWriter.record_step = counted_step


if __name__ == "__main__":
    kill_at(int(sys.argv[1]), int(sys.argv[2]))
    sys.exit(main(sys.argv[3:]))
