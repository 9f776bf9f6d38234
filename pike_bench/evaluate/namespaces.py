"""The first process inside the `unshare` sandbox, where bubblewrap is missing.

`unshare` (util-linux) gives the process new mount, network, PID, IPC and UTS
namespaces, and nothing more: this script, run as PID 1 there with the standard library
only (``python -I -S namespaces.py PLAN -- COMMAND...``), builds what bubblewrap would:

- a fresh ``/dev`` with the usual nodes and, for workers, the GPU's, so neither the
  host's disks nor its ``/dev/shm`` are in reach;
- the system's sockets and the home folder's credentials covered;
- every mount read-only except the scratch folder and the caches, and loopback up (a
  connection to 127.0.0.1 reaches nothing outside, as in bubblewrap);
- then it gives up every capability and the right to gain one (no_new_privs), so the
  candidate cannot mount the files writable again, and runs COMMAND in a new session,
  waiting for it as an init does. Its exit code is COMMAND's, or 128 + N when signal N
  killed it (bubblewrap's convention).

PLAN is JSON: {"writable": [...], "hide": [...], "show": [...], "gpu_nodes": [...]}.
Any step that fails ends the process with code 125 and one line naming the step, so the
sandbox is never weaker than it says.
"""

import ctypes
import errno
import fcntl
import json
import os
import socket
import struct
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_MOVE, MS_REC, MS_RELATIME = 1024, 2048, 4096, 8192, 16384, 1 << 21
MNT_DETACH = 2
# statvfs's flags and the mount flags they stand for: a remount in a user namespace must
# keep them (the kernel refuses to clear a flag the parent namespace set).
KEPT_FLAGS = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC, os.ST_NOATIME: MS_NOATIME,
              os.ST_NODIRATIME: MS_NODIRATIME, os.ST_RELATIME: MS_RELATIME}
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1

libc = ctypes.CDLL(None, use_errno=True)


class SetupFailed(Exception):
    pass


def call(what: str, result: int) -> None:
    if result != 0:
        raise SetupFailed(f"{what}: {os.strerror(ctypes.get_errno())}")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    encode = lambda text: None if text is None else text.encode()  # noqa: E731
    call(f"mount {target}", libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)))


def bind(source: str, target: str) -> None:
    """`source` seen at `target` too, which is made first (a file or a folder, as `source` is)."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        open(target, "w").close()
    mount(source, target, None, MS_BIND | MS_REC)


def fresh_dev(stash: str, gpu_nodes: list[str]) -> None:
    """A tmpfs on /dev with the usual nodes and the GPU's, bound from the host's /dev
    (first bound at `stash`, as the tmpfs covers it)."""
    bind("/dev", stash)
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755")
    for name in DEV_NODES:
        if os.path.exists(f"{stash}/{name}"):
            bind(f"{stash}/{name}", f"/dev/{name}")
    for node in gpu_nodes:  # /dev/nvidia0, /dev/nvidia-uvm, /dev/dri...
        bind(stash + node.removeprefix("/dev"), node)
    os.mkdir("/dev/shm")
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{fd}", f"/dev/{name}")
    os.symlink("/proc/self/fd", "/dev/fd")
    call(f"umount {stash}", libc.umount2(stash.encode(), MNT_DETACH))
    os.rmdir(stash)


def cover(hide: list[str], show: list[str], stash: str) -> None:
    """Folders under an empty tmpfs and files under /dev/null; then each of `show` (inside a
    hidden folder) bound back where it was."""
    kept = {path: f"{stash}/{n}" for n, path in enumerate(show)}
    for path, place in kept.items():
        bind(path, place)
    for path in hide:
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
        else:
            mount("/dev/null", path, None, MS_BIND)
    for path, place in kept.items():
        os.makedirs(path, exist_ok=True)
        mount(place, path, None, MS_MOVE)
        os.rmdir(place)


def mount_points() -> list[str]:
    """Every mount point of this namespace, with mountinfo's octal escapes (\\040) undone."""
    with open("/proc/self/mountinfo", "rb") as info:
        points = [line.split()[4] for line in info]
    return [point.decode("unicode_escape").encode("latin-1").decode() for point in points]


def read_only_except(writable: list[str]) -> None:
    for path in writable:
        mount(path, path, None, MS_BIND | MS_REC)  # its own mount, left writable below
    for point in dict.fromkeys(mount_points()):
        if point in writable or point == "/dev/shm" or not os.path.exists(point):
            continue
        flags = os.statvfs(point).f_flag
        kept = sum(flag for st, flag in KEPT_FLAGS.items() if flags & st)
        if libc.mount(None, point.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept, None) != 0:
            # EINVAL: another mount covers this one (the host's /proc/sys/fs/binfmt_misc under the new
            # /proc, say), and that one has its own line in mountinfo.
            if ctypes.get_errno() != errno.EINVAL:
                raise SetupFailed(f"mount {point} read-only: {os.strerror(ctypes.get_errno())}")


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16sh22x", b"lo", 0))[:18])[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))


def drop_privileges() -> None:
    """No capability now or after exec, and none to gain from a setuid program."""
    call("no_new_privs", libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    # Each capability the kernel knows, up to the first it does not (EINVAL), where
    # /proc/sys/kernel/cap_last_cap is missing (gVisor, say).
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL and cap > 0:
                break
            call(f"drop capability {cap}", -1)
    # EINVAL: a kernel without ambient capabilities, so none to clear.
    if libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
        call("clear ambient capabilities", -1)
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    call("clear capabilities", libc.capset(header, bytes(24)))


def run_as_init(argv: list[str]) -> int:
    """Start `argv` in a new session and reap every process until it ends."""
    child = os.fork()
    if child == 0:
        try:
            os.setsid()  # no controlling terminal: no keystrokes pushed into the user's shell
            os.execvp(argv[0], argv)
        except OSError as exc:
            print(f"pike-bench sandbox: cannot run {argv[0]}: {exc}", file=sys.stderr)
            os._exit(127)
    while True:
        pid, status = os.wait()
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


def main(args: list[str]) -> int:
    plan, argv = json.loads(args[0]), args[2:]
    stash = os.path.join(plan["writable"][0], ".pike_stash")
    try:
        os.mkdir(stash)
        fresh_dev(f"{stash}/dev", plan["gpu_nodes"])
        cover(plan["hide"], plan["show"], stash)
        os.rmdir(stash)
        read_only_except(plan["writable"])
        loopback_up()
        drop_privileges()
    except (SetupFailed, OSError) as exc:
        print(f"pike-bench sandbox: {exc}", file=sys.stderr)
        return 125
    return run_as_init(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
