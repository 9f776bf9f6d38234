"""A build lock for torch's C++/CUDA extensions that ends with the process holding it.

`load_inline` guards each extension's build folder with torch's `FileBaton`: a `lock` file
created with O_EXCL and removed when the build ends. A worker killed mid-build (its time
limit, a crash, Ctrl-C) leaves the file behind, and every later build of that extension,
in this run or the next, waits for it until its own time limit. The baton here keeps
torch's protocol (try to take it; else wait for the builder; release) but takes the
kernel's lock on the file (flock, through `filelock`), which the kernel drops when the
holder dies. A file left by torch's own baton is then just a file.

Every process that builds into the same extension folder must use this lock: torch's own
baton waits for the file to go, and this one leaves it (see `release`). The worker and the
prebuild process install it before importing a candidate.

From torch 2.14 on, cpp_extension holds an flock of its own (filelock, on the same `lock`
file) and has no FileBaton: there `install` changes nothing.
"""

from __future__ import annotations

import filelock


class BuildLock:
    """Drop-in for torch.utils.file_baton.FileBaton (the methods cpp_extension calls)."""

    def __init__(self, lock_file_path: str, wait_seconds: float = 0.1, warn_after_seconds: float | None = None):
        self.lock_file_path = lock_file_path
        self._lock = filelock.FileLock(lock_file_path)

    def try_acquire(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        return True

    def wait(self) -> None:
        """Until the builder has finished (or died): then its lock is free for a moment."""
        with self._lock:
            pass

    def release(self) -> None:
        # The file stays: removing it while another process waits on it would let a third
        # create a new file and lock that, and two would build at once.
        self._lock.release()


def install() -> None:
    """Use BuildLock for every extension this process builds from now on (nothing to do
    where torch locks its builds with an flock itself: 2.14 and later)."""
    import torch.utils.cpp_extension as cpp_extension
    import torch.utils.file_baton

    if hasattr(cpp_extension, "FileBaton"):
        torch.utils.file_baton.FileBaton = BuildLock
        cpp_extension.FileBaton = BuildLock  # it imported the name before this ran
