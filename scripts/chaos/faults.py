"""The faults of a trial: what fails, where, when and for how long, drawn
from the trial's random generator, then carried out on threads of their own
while the calls run.

Kinds (the names the run reports):

- ``kill-mid-call``: SIGKILL of the site a call is talking to while the
  caller speaks; the site comes back after a pause.
- ``kill-mid-encode``: SIGKILL of a site that stores Opus the moment a
  call's media ends there (its log line), while the message is being
  finished and encoded.
- ``kill-mid-transfer-sender`` / ``-receiver``: SIGKILL of the site that
  recorded a message for another site's mailbox, or of that home, the
  moment the message is stored and queued (its log line), while it moves.
- ``restart``: SIGTERM (graceful: calls in progress are ended and stored),
  then a new start.
- ``blackhole``: every packet between two sites silently dropped for a
  while (nftables inside one of them).
- ``link-down``: the link between two sites down for a while.
- ``disk-full``: a filler file takes a site's free space (all of it, or
  all but a little, or enough to go under ``storage.min_free_mb``) for a
  while, then is removed.

A killed site is inspected before it restarts: which calls it had answered
and whether each one's recording had opened (its sidecar, fsynced when the
ACK opens the recording) or was stored. Only a call whose recording never
opened may be absent at the end (the 200 was sent, the ACK was not taken
yet): the check needs that fact, not a guess from timing. Each fault notes
where it landed ("mid-call", "after hang-up", ...), so the report says how
many faults hit the window they aim at.
"""

import re
import threading
import time
import traceback

import net
from sites import SiteError, log_time

KINDS = (
    "kill-mid-call",
    "kill-mid-encode",
    "kill-mid-transfer-sender",
    "kill-mid-transfer-receiver",
    "restart",
    "blackhole",
    "link-down",
    "disk-full",
)

# How often each kind is drawn (relative).
WEIGHTS = {
    "kill-mid-call": 3,
    "kill-mid-encode": 2,
    "kill-mid-transfer-sender": 2,
    "kill-mid-transfer-receiver": 2,
    "restart": 2,
    "blackhole": 3,
    "link-down": 2,
    "disk-full": 2,
}

# A log-triggered fault that has not seen its line this long after its
# call's planned end gives up (not injected).
TRIGGER_SLACK_S = 15

_ANSWERING = re.compile(r"call_id=(\S+?)[ }].*\banswering\b")
_CALL_ID = re.compile(r"call_id=(\S+?)[ }]")
_STORED_ID = re.compile(r"message stored id=([0-9a-f-]{36})")


class Fault:
    """One planned fault and, once carried out, what it did."""

    def __init__(self, kind, **plan):
        self.kind = kind
        self.plan = plan
        self.injected = False
        self.injected_at = None
        self.healed_at = None
        self.landed = None
        self.note = ""
        self.error = None
        self.thread = None
        # kill-mid-transfer: (message id, sender letter, home letter).
        self.message = None

    def describe(self):
        p = self.plan
        where = ""
        if "site" in p:
            where = f"site-{p['site']}"
        if "pair" in p:
            x, y = p["pair"]
            where = f"site-{x}|site-{y} (rule in site-{p['side']})"
        if "call" in p:
            where += f", call {p['call']}"
        state = "not injected" if not self.injected else f"landed {self.landed}"
        return f"{self.kind} {where} ({state}{'; ' + self.note if self.note else ''})"

    def record(self):
        return {"kind": self.kind, "plan": self.plan, "injected": self.injected,
                "injected_at": self.injected_at, "healed_at": self.healed_at,
                "landed": self.landed, "note": self.note, "error": self.error}


def plan_faults(rng, calls, formats):
    """1 to 3 faults for a trial. Kinds that need a fitting call (an Opus
    site's call, a call for another site's mailbox) draw one; when none
    fits another kind is drawn."""
    faults = []
    kinds = list(WEIGHTS)
    weights = [WEIGHTS[k] for k in kinds]
    for _ in range(rng.randint(1, 3)):
        for _attempt in range(10):
            kind = rng.choices(kinds, weights)[0]
            fault = _plan_one(rng, kind, calls, formats)
            if fault is not None:
                faults.append(fault)
                break
    return faults


def _plan_one(rng, kind, calls, formats):
    sites = list(net.SITES)
    if kind == "kill-mid-call":
        call = rng.choice(calls)
        at = call.start + rng.uniform(0.1, call.clip_s + 0.3)
        return Fault(kind, site=call.site, call=call.n, at=at, down_s=rng.uniform(0.2, 2.0))
    if kind == "kill-mid-encode":
        fitting = [c for c in calls if formats[c.site] == "opus"]
        if not fitting:
            return None
        call = rng.choice(fitting)
        return Fault(kind, site=call.site, call=call.n, down_s=rng.uniform(0.2, 1.5))
    if kind.startswith("kill-mid-transfer"):
        fitting = [c for c in calls if c.home != c.site]
        if not fitting:
            return None
        call = rng.choice(fitting)
        victim = call.site if kind.endswith("sender") else call.home
        return Fault(kind, site=victim, call=call.n, delay_s=rng.uniform(0.0, 0.012),
                     down_s=rng.uniform(0.2, 1.5))
    if kind == "restart":
        return Fault(kind, site=rng.choice(sites), at=rng.uniform(0.2, 4.0),
                     down_s=rng.uniform(0.0, 1.0))
    # Messages are stored from about 1.5 s on (calls start in the first
    # 3.5 s and last 2 to 3.5 s): partitions and full disks fall in that
    # span, so they meet transfers.
    if kind in ("blackhole", "link-down"):
        pair = tuple(sorted(rng.sample(sites, 2)))
        return Fault(kind, pair=pair, side=rng.choice(pair), at=rng.uniform(0.5, 5.0),
                     for_s=rng.uniform(0.5, 3.0))
    if kind == "disk-full":
        leave = rng.choice(["nothing", "a little", "under the minimum"])
        return Fault(kind, site=rng.choice(sites), at=rng.uniform(0.5, 5.0),
                     for_s=rng.uniform(0.5, 3.0), leave=leave)
    raise ValueError(kind)


class TrialState:
    """What the fault threads share: the sites, the calls, the clock, and
    what they found (returns of homes, kills and what each left)."""

    def __init__(self, sites, calls, t0, log_offsets, min_free_mb):
        self.sites = sites
        self.calls = calls
        self.t0 = t0
        # Where each site's log of this trial starts (one log per trial).
        self.log_offsets = log_offsets
        self.min_free_mb = min_free_mb
        self.lock = threading.Lock()
        # (sender letter or None for every sender, home letter, epoch, why)
        self.returns = []
        # Call-IDs answered by a process that was killed before the call's
        # recording opened: they may leave no message.
        self.unopened = set()
        self.kills = []

    def sleep_until(self, offset):
        delay = self.t0 + offset - time.time()
        if delay > 0:
            time.sleep(delay)

    def add_return(self, sender, home, when, why):
        with self.lock:
            self.returns.append((sender, home, when, why))


def _wait_log(state, site, pattern, call):
    """Polls ``site``'s log for a line matching ``pattern``, about ``call``;
    returns the line, or None once the call's SIPp has exited and its site
    had a few seconds more to log it (or TRIGGER_SLACK_S after its planned
    end)."""
    seen = state.log_offsets[site.letter]
    deadline = state.t0 + call.start + call.clip_s + TRIGGER_SLACK_S
    while time.time() < deadline:
        for line in site.log_lines(seen):
            if pattern.search(line):
                return line
        if call.finished_at is not None:
            deadline = min(deadline, call.finished_at + 3)
        time.sleep(0.003)
    return None


def _kill(state, site, fault):
    """SIGKILL ``site`` and take stock of the calls it had answered; False
    if it was not running."""
    with site.lock:
        if not site.running():
            return False
        started = site.process_log_offset
        site.kill9()
        killed_at = time.time()
        fault.injected = True
        fault.injected_at = killed_at
        answered = set()
        for line in site.log_lines(started):
            m = _ANSWERING.search(line)
            if m:
                answered.add(m.group(1))
        sidecars = site.recording_sidecars()
        unopened = answered - set(sidecars)
        if unopened:
            # Of those, the ones already stored are no excuse either.
            try:
                listed = {m.get("call_id") for m in site.messages()}
            except SiteError as e:
                listed = set()
                fault.note = f"cannot list after the kill: {e}"
            unopened -= listed
        with state.lock:
            state.unopened |= unopened
            state.kills.append({"site": site.letter, "at": killed_at,
                                "recordings_open": sorted(sidecars),
                                "answered_unopened": sorted(unopened)})
        return True


def _restart(state, site, fault, pause_s):
    time.sleep(pause_s)
    ready = site.start()
    fault.healed_at = ready
    state.add_return(None, site.letter, ready, f"{fault.kind} of site-{site.letter}")


def _call(state, n):
    return next(c for c in state.calls if c.n == n)


def run_fault(state, fault):
    """Carries out one fault (on its own thread); errors are kept on the
    fault, never raised, so the trial can report them."""
    try:
        _run(state, fault)
    except Exception as e:  # noqa: BLE001 - reported as a harness error
        fault.error = f"{e.__class__.__name__}: {e}\n{traceback.format_exc()}"


def _run(state, fault):
    p = fault.plan
    kind = fault.kind
    if kind == "kill-mid-call":
        site = state.sites[p["site"]]
        call = _call(state, p["call"])
        state.sleep_until(p["at"])
        landed = ("mid-call" if call.in_progress() else
                  "after hang-up" if call.answered() else "before the answer")
        if not _kill(state, site, fault):
            fault.note = "site already down"
            return
        fault.landed = landed
        _restart(state, site, fault, p["down_s"])
    elif kind == "kill-mid-encode":
        site = state.sites[p["site"]]
        call = _call(state, p["call"])
        pattern = re.compile(re.escape(f"call_id={call.call_id}") + r".*call media ended")
        if _wait_log(state, site, pattern, call) is None:
            fault.note = "the call's media never ended there"
            return
        if not _kill(state, site, fault):
            fault.note = "site already down"
            return
        opened = call.call_id in state.kills[-1]["recordings_open"]
        fault.landed = "before its message was stored" if opened else "after the store"
        _restart(state, site, fault, p["down_s"])
    elif kind.startswith("kill-mid-transfer"):
        call = _call(state, p["call"])
        sender = state.sites[call.site]
        victim = state.sites[p["site"]]
        pattern = re.compile(re.escape(f"call_id={call.call_id}") + r".*message stored")
        line = _wait_log(state, sender, pattern, call)
        if line is None:
            fault.note = "the message was never stored there"
            return
        time.sleep(p["delay_s"])
        m = _STORED_ID.search(line)
        message_id = m.group(1) if m else "?"
        if not _kill(state, victim, fault):
            fault.note = "site already down"
            return
        delivered = any("delivered to its home" in l and message_id in l
                        for l in sender.log_lines(state.log_offsets[sender.letter]))
        # Refined by classify() once the trial has settled.
        fault.landed = "after delivery" if delivered else "before delivery"
        fault.note = f"message {message_id}"
        fault.message = (message_id, call.site, call.home)
        _restart(state, victim, fault, p["down_s"])
    elif kind == "restart":
        site = state.sites[p["site"]]
        state.sleep_until(p["at"])
        with site.lock:
            if not site.running():
                fault.note = "site already down"
                return
            fault.injected = True
            fault.injected_at = time.time()
            active = [c for c in state.calls if c.site == site.letter and c.in_progress()]
            started = site.process_log_offset
            status = site.stop()
            # A call the stop caught between its 200 and its ACK ends
            # without a recording, and the server says so.
            unconfirmed = set()
            for line in site.log_lines(started):
                if "never confirmed by an ACK" in line:
                    m = _CALL_ID.search(line)
                    if m:
                        unconfirmed.add(m.group(1))
            with state.lock:
                state.unopened |= unconfirmed
        fault.landed = "during a call" if active else "between calls"
        if status != 0:
            fault.note = f"graceful stop failed (exit {status})"
        _restart(state, site, fault, p["down_s"])
    elif kind in ("blackhole", "link-down"):
        x, y = p["pair"]
        side = p["side"]
        other = y if side == x else x
        state.sleep_until(p["at"])
        if kind == "blackhole":
            net.blackhole(side, other)
        else:
            net.link_down(side, other)
        fault.injected = True
        fault.injected_at = time.time()
        fault.landed = "between sites"
        time.sleep(p["for_s"])
        if kind == "blackhole":
            net.unblackhole(side, other)
        else:
            net.link_up(side, other)
        fault.healed_at = time.time()
        state.add_return(x, y, fault.healed_at, f"{kind} healed")
        state.add_return(y, x, fault.healed_at, f"{kind} healed")
    elif kind == "disk-full":
        site = state.sites[p["site"]]
        state.sleep_until(p["at"])
        mib = 1024 * 1024
        leave = {"nothing": 0, "a little": 256 * 1024,
                 "under the minimum": (state.min_free_mb * mib) // 2}[p["leave"]]
        size = site.fill(leave)
        fault.injected = True
        fault.injected_at = time.time()
        active = [c.n for c in state.calls if c.site == site.letter and c.in_progress()]
        fault.landed = "during a call" if active else "between calls"
        fault.note = f"filler {size // 1024} KiB, left {p['leave']}"
        time.sleep(p["for_s"])
        site.unfill()
        fault.healed_at = time.time()
        state.add_return(None, site.letter, fault.healed_at, f"disk of site-{site.letter} freed")
    else:
        raise ValueError(kind)


def classify(state, fault):
    """Once the trial has settled, says where a fault landed from what the
    sites logged after it:

    - a kill mid-transfer that struck after the home had stored the
      message but before the sender had its 200 shows as the copy sent
      again and absorbed at the home ("copy absorbed"), the window where
      a message could be doubled; one that struck before the home stored
      it, as the message sent again ("sent again");
    - a partition or link down with messages stored for the other side
      while it lasted, or transfers retried across it, crossed traffic.
    """
    if not fault.injected:
        return
    if fault.message and fault.landed == "before delivery":
        message_id, sender, home = fault.message
        home_log = state.sites[home].log_lines(state.log_offsets[home])
        absorbed = any("duplicate absorbed" in l and message_id in l for l in home_log)
        fault.landed = ("between the home's store and the sender's 200 (copy absorbed)"
                        if absorbed else "before the home stored it (sent again)")
    if fault.kind in ("blackhole", "link-down"):
        x, y = fault.plan["pair"]
        crossed = 0
        for me, other in ((x, y), (y, x)):
            site = state.sites[me]
            for line in site.log_lines(state.log_offsets[me]):
                t = log_time(line)
                if t is None or not fault.injected_at <= t <= (fault.healed_at or t):
                    continue
                if (f'home=Some("site-{other}")' in line or
                        (f"peer{{name=site-{other}}}" in line and "retried" in line)):
                    crossed += 1
        fault.landed = "with traffic across it" if crossed else "with no traffic across it"


def start_faults(state, faults):
    for fault in faults:
        fault.thread = threading.Thread(target=run_fault, args=(state, fault), daemon=True)
        fault.thread.start()


def wait_faults(faults, timeout_s):
    deadline = time.time() + timeout_s
    for fault in faults:
        fault.thread.join(max(0.0, deadline - time.time()))
    return all(not f.thread.is_alive() for f in faults)
