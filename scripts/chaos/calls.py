"""The calls of a trial: who calls which site for which mailbox, when, and
what the caller heard back.

Each call is one SIPp process (``call.xml``) started inside the called
site's namespace, from 127.0.0.1, at its planned moment. Its Call-ID is
set by the run (``-cid_str``), unique over the whole run, so the stored
message is found by its ``call_id``. SIPp writes "ANSWERED" to its log
when the 200 OK arrives and "ENDED" when its BYE is answered; a call that
logged ANSWERED must leave exactly one message at its mailbox's home,
whatever the faults did after that.
"""

import os
import subprocess
import threading
import time

import net

# The clips callers speak, made from testdata/speech-ulaw.wav by the run:
# seconds of speech, each long enough to pass the 1 s minimum once the
# trailing silence is trimmed.
CLIP_SECONDS = (1.5, 2.0, 3.0)

# A call's SIPp runs at most this long after its start, whatever happens.
CALL_TIMEOUT_S = 40

# Set by the run's cleanup: no call starts any more. The lock makes the
# check and the start one step, so kill_calls() sees every SIPp started.
STOPPING = threading.Event()
_STARTING = threading.Lock()


class Call:
    """One planned call and, once run, what SIPp saw."""

    def __init__(self, n, site, mailbox, start, clip_s, call_id):
        self.n = n
        self.site = site  # letter of the site called
        self.mailbox = mailbox
        self.start = start  # seconds after the trial's calls begin
        self.clip_s = clip_s
        self.call_id = call_id
        self.thread = None
        self.process = None
        self.log_file = None
        self.started_at = None  # epoch
        self.finished_at = None
        self.exit = None

    @property
    def home(self):
        return {"1": "a", "2": "b", "3": "c"}[self.mailbox[0]]

    def describe(self):
        return (f"call {self.n} ({self.call_id}) to site-{self.site} for mailbox "
                f"{self.mailbox} (home site-{self.home}), {self.clip_s} s at +{self.start:.2f} s")

    def plan(self):
        return {"n": self.n, "site": self.site, "mailbox": self.mailbox,
                "start_s": round(self.start, 3), "clip_s": self.clip_s, "call_id": self.call_id}

    def log_words(self):
        if self.log_file is None:
            return []
        try:
            with open(self.log_file) as f:
                return f.read().split()
        except OSError:
            return []

    def answered(self):
        return "ANSWERED" in self.log_words()

    def ended(self):
        return "ENDED" in self.log_words()

    def in_progress(self):
        """Answered and not yet hung up by the caller (as far as SIPp knows)."""
        return self.answered() and not self.ended() and self.finished_at is None


def plan_calls(rng, trial_tag, count_per_site):
    """Random calls for one trial: ``count_per_site`` to each site, for
    mailboxes homed anywhere, starting within the first 3.5 s."""
    calls = []
    n = 0
    for site in net.SITES:
        for _ in range(count_per_site):
            home_digit = rng.choice("123")
            mailbox = f"{home_digit}{rng.randrange(1, 1000):03d}"
            start = rng.uniform(0.0, 3.5)
            clip = rng.choice(CLIP_SECONDS)
            call_id = f"chaos-{trial_tag}-{site}{n}@127.0.0.1"
            calls.append(Call(n, site, mailbox, start, clip, call_id))
            n += 1
    return calls


def write_scenarios(work, clips):
    """One scenario file per clip (SIPp takes the RTP file from the
    scenario): ``{seconds: path}``."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "call.xml")) as f:
        template = f.read()
    scenarios = {}
    for seconds, clip in clips.items():
        path = os.path.join(work, f"call-{seconds}.xml")
        with open(path, "w") as f:
            f.write(template.replace("CLIP", clip))
        scenarios[seconds] = path
    return scenarios


def run_call(call, scenarios, trial_dir, t0):
    """Runs one call at its moment (``t0`` + its start); blocks until SIPp
    exits or CALL_TIMEOUT_S passes (then kills it)."""
    delay = t0 + call.start - time.time()
    if delay > 0:
        time.sleep(delay)
    site_ip = net.service_ip(call.site)
    base = os.path.join(trial_dir, f"sipp-{call.n}")
    call.log_file = base + ".log"
    try:
        out = open(base + ".out", "wb")
    except OSError:
        return  # the trial is being torn down
    # Each call of a site gets SIP and media ports of its own.
    port = 5070 + 2 * call.n
    media_port = 16000 + 10 * call.n
    args = [
        "ip", "netns", "exec", net.namespace(call.site),
        "sipp", f"{site_ip}:5060", "-sf", scenarios[call.clip_s],
        "-s", call.mailbox, "-d", str(int(call.clip_s * 1000 + 500)),
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(port), "-mp", str(media_port),
        "-m", "1", "-nostdin", "-cid_str", call.call_id,
        "-trace_logs", "-log_file", call.log_file,
        "-trace_err", "-error_file", base + ".errors",
        "-timeout", f"{CALL_TIMEOUT_S - 5}s",
    ]
    with _STARTING:
        if STOPPING.is_set():
            out.close()
            return
        call.started_at = time.time()
        call.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    try:
        call.exit = call.process.wait(timeout=CALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        call.process.kill()
        call.exit = call.process.wait()
    call.finished_at = time.time()


def start_calls(calls, scenarios, trial_dir, t0):
    for call in calls:
        call.thread = threading.Thread(target=run_call, args=(call, scenarios, trial_dir, t0),
                                       daemon=True)
        call.thread.start()


def wait_calls(calls, timeout_s):
    """Waits for every call's SIPp to exit; True when all did in time."""
    deadline = time.time() + timeout_s
    for call in calls:
        if call.thread:
            call.thread.join(max(0.0, deadline - time.time()))
    return all(c.thread is None or not c.thread.is_alive() for c in calls)


def stop_all(calls):
    """The run is ending: no call starts any more, and every SIPp still
    running is killed."""
    with _STARTING:
        STOPPING.set()
    kill_calls(calls)


def kill_calls(calls):
    """Ends the SIPp of every call still running."""
    for call in calls:
        p = call.process
        if p is not None and p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
