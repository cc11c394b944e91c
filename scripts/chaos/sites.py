"""One site of the chaos mesh: a `vmesh serve` process in the site's network
namespace, its data directory on a small tmpfs of its own, its log, and its
CLI.

The data directory is ``<mount>/data`` on a tmpfs mounted fresh for every
trial with a size limit, so the "disk full" fault is real (a filler file at
``<mount>/filler`` takes what is left) and nothing one trial stored is seen
by the next. The server is started with ``ip netns exec``, which execs it in
place: the pid we hold is the server's, and SIGKILL reaches it directly.
Every wait here has a deadline.
"""

import datetime
import errno
import json
import os
import re
import signal
import subprocess
import threading
import time

import net

# A server that has not logged "vmesh serving" by then failed to start.
READY_TIMEOUT_S = 30
# A graceful stop ends calls and stores them (the server's own grace is
# 10 s); a stop that takes longer than this is reported and killed.
STOP_TIMEOUT_S = 30
# A CLI command reads SQLite; seconds, even on a loaded machine.
CLI_TIMEOUT_S = 30

NAMES = {"a": "site-a", "b": "site-b", "c": "site-c"}
# The mailboxes each site is home to.
HOME_RANGE = {"a": "1000-1999", "b": "2000-2999", "c": "3000-3999"}

# RFC 3339 timestamp at the start of each log line (tracing's default).
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z\s")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def home_of(mailbox):
    """The site letter a mailbox is homed at (first digit 1, 2 or 3)."""
    return {"1": "a", "2": "b", "3": "c"}[mailbox[0]]


def log_time(line):
    """The epoch time a log line was written, or None."""
    m = _STAMP.match(line)
    if not m:
        return None
    stamp = m.group(1)
    if "." in stamp:
        whole, frac = stamp.split(".")
        stamp = f"{whole}.{(frac + '000000')[:6]}"
    else:
        stamp += ".000000"
    t = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


class SiteError(Exception):
    """The site could not be started, stopped, mounted or read."""


class Site:
    """One site; ``letter`` is a, b or c."""

    def __init__(self, letter, work, binary):
        self.letter = letter
        self.name = NAMES[letter]
        self.ip = net.service_ip(letter)
        self.work = work
        self.binary = binary
        self.mount = os.path.join(work, "mnt", self.name)
        self.data = os.path.join(self.mount, "data")
        self.filler = os.path.join(self.mount, "filler")
        self.profile = os.path.join(work, f"{self.name}.toml")
        self.log_path = None
        self.process = None
        # Where the running process's lines begin in the log.
        self.process_log_offset = 0
        # Serializes start, kill and stop between fault threads.
        self.lock = threading.RLock()
        # Set by the run's cleanup: no fault thread may start it again.
        self.closed = False

    # --- the file system ------------------------------------------------------

    def mount_fs(self, size_mb):
        os.makedirs(self.mount, exist_ok=True)
        net.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700",
                 net.PREFIX, self.mount])
        os.makedirs(self.data)

    def unmount_fs(self):
        if os.path.ismount(self.mount):
            net.run(["umount", self.mount])

    def free_bytes(self):
        st = os.statvfs(self.mount)
        return st.f_bavail * st.f_frsize

    def fill(self, leave_bytes):
        """Takes all free space but ``leave_bytes`` with a filler file;
        returns the filler's size."""
        # The site writes meanwhile: space taken between the measure and
        # the allocation makes it fail with ENOSPC; measure again, smaller.
        for _ in range(20):
            size = max(0, self.free_bytes() - leave_bytes)
            with open(self.filler, "wb") as f:
                try:
                    if size:
                        os.posix_fallocate(f.fileno(), 0, size)
                    return size
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
            leave_bytes += 64 * 1024
        raise RuntimeError("cannot make the filler: the free space keeps shrinking")

    def unfill(self):
        try:
            os.remove(self.filler)
        except FileNotFoundError:
            pass

    # --- the profile ------------------------------------------------------------

    def write_profile(self, storage_format, mesh_timings, min_free_mb):
        """The site's profile for one trial: SIP on its service address
        (UDP and TCP for callers, TLS for peers), callers from inside its
        namespace only, no prompts (the recording starts at the ACK), short
        mesh timings so a trial's failures and returns play out in seconds."""
        mesh = "\n".join(f"{k} = {v}" for k, v in mesh_timings.items())
        text = f"""# A chaos-run site, written by scripts/chaos.
[server]
name = "{self.name}"
topology = "topology.toml"
data_dir = "{self.data}"

[sip]
listen = ["udp:{self.ip}:5060", "tcp:{self.ip}:5060", "tls:{self.ip}:5061"]
allow = ["127.0.0.1"]

[tls]
cert = "certs/{self.name}.pem"
key = "certs/{self.name}.key"

[media]
prompts = false
rtp_port_min = 20000
rtp_port_max = 20999

[storage]
format = "{storage_format}"
min_free_mb = {min_free_mb}

[mesh]
{mesh}
"""
        with open(self.profile, "w") as f:
            f.write(text)

    # --- the process --------------------------------------------------------

    def running(self):
        return self.process is not None and self.process.poll() is None

    def pid(self):
        return self.process.pid if self.process else None

    def start(self):
        """Starts the server and waits until it serves (its "vmesh serving"
        line: the SIP sockets are bound); returns that moment (epoch)."""
        with self.lock:
            if self.closed:
                raise SiteError(f"{self.name}: the run is stopping")
            if self.running():
                raise SiteError(f"{self.name} is already running")
            offset = self.log_size()
            self.process_log_offset = offset
            log = open(self.log_path, "ab")
            env = dict(os.environ, VMESH_LOG="info,rsipstack=warn")
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", net.namespace(self.letter), self.binary,
                 "serve", "--profile", self.profile],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                cwd=self.work, start_new_session=True)
            log.close()
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                for line in self.log_lines(offset):
                    if "vmesh serving" in line:
                        return time.time()
                if self.process.poll() is not None:
                    raise SiteError(f"{self.name} exited at start-up ({self.process.returncode}); "
                                    f"log: {self.log_path}")
                if time.monotonic() > deadline:
                    raise SiteError(f"{self.name} did not serve within {READY_TIMEOUT_S} s; "
                                    f"log: {self.log_path}")
                time.sleep(0.01)

    def close(self):
        """Kills the server for good: the run is ending."""
        with self.lock:
            self.closed = True
            self.kill9()

    def kill9(self):
        """SIGKILL (a crash, a power cut of the process) and reap."""
        with self.lock:
            if not self.running():
                return False
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)
            return True

    def stop(self):
        """SIGTERM and wait for the graceful exit; returns the exit status,
        or None if it had to be killed after STOP_TIMEOUT_S."""
        with self.lock:
            if not self.running():
                return 0
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
                return None

    # --- the log ------------------------------------------------------------

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_lines(self, offset=0):
        """The log's complete lines from byte ``offset`` on, colours removed."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return []
        text = data.decode("utf-8", "replace")
        lines = text.split("\n")
        return [_ANSI.sub("", l) for l in lines[:-1]]

    # --- the CLI ------------------------------------------------------------

    def cli_json(self, *args):
        """``vmesh ARGS --json --data DIR``, parsed; SiteError on failure."""
        cmd = [self.binary, *args, "--json", "--data", self.data]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise SiteError(f"{self.name}: {' '.join(args)} timed out") from e
        if out.returncode != 0:
            raise SiteError(f"{self.name}: vmesh {' '.join(args)}: {out.stderr.strip()}")
        try:
            return json.loads(out.stdout)
        except ValueError as e:
            raise SiteError(f"{self.name}: vmesh {' '.join(args)}: not JSON: {e}") from e

    def messages(self):
        """Every message the site lists, in every folder."""
        listed = []
        for folder in ("new", "old", "saved", "deleted"):
            listed.extend(self.cli_json("messages", "list", "--folder", folder))
        return listed

    def queue(self):
        return self.cli_json("queue")

    def recording_sidecars(self):
        """The Call-IDs of the recordings in ``recording/`` (their sidecars,
        written and fsynced when a recording starts): what a crash now
        leaves for recovery."""
        found = {}
        folder = os.path.join(self.data, "recording")
        try:
            names = os.listdir(folder)
        except OSError:
            return found
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(folder, name)) as f:
                    sidecar = json.load(f)
            except (OSError, ValueError):
                continue
            found[sidecar.get("call_id")] = sidecar.get("id")
        return found

    def audio_path(self, message):
        ext = "opus" if message.get("format") == "opus" else "wav"
        return os.path.join(self.data, "messages", message["mailbox"], f"{message['id']}.{ext}")
