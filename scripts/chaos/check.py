"""The end of a trial: wait until the mesh has settled, then hold it to its
promise, from each site's CLI JSON and its files only.

Settled means: every site up (the trial restarted them), every queue empty,
and every answered call's message listed at its home, or a bounded wait
ran out. Then, for every call that got a 200 OK:

- exactly one message with its Call-ID at its mailbox's home, stored there
  as home (``delivery: home``); none is a loss, two are a duplicate. A call
  answered by a process killed before the ACK opened its recording may
  have none (see faults.py); it is counted apart, never as recorded.
- no message id listed twice anywhere;
- every queue empty, every copy recorded for another site's mailbox
  ``delivered``, with the same id and sha256 as at its home;
- every listed file exists and matches the sha256 and size it is listed
  with (computed here from the file).

``partial: true`` messages are fine: they are what a crash or a full disk
leaves, and they are counted.
"""

import hashlib
import os
import re
import time

from sites import SiteError, home_of, log_time

# Bound of the wait for the mesh to settle once every fault is healed.
SETTLE_TIMEOUT_S = 90
POLL_S = 0.3


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def _snapshot(sites, all_folders):
    """{letter: (messages, queue)}; SiteError if a CLI call fails."""
    snap = {}
    for letter, site in sites.items():
        if all_folders:
            messages = site.messages()
        else:
            messages = site.cli_json("messages", "list")
        snap[letter] = (messages, site.queue())
    return snap


def _missing(snap, answered, excused):
    """Answered calls whose message is not (yet) listed at home."""
    missing = []
    for call in answered:
        if call.call_id in excused:
            continue
        at_home = snap[call.home][0]
        if not any(m.get("call_id") == call.call_id for m in at_home):
            missing.append(call)
    return missing


def settle(sites, answered, excused):
    """Polls until every queue is empty and every answered call is listed
    at home, or until nothing can change any more: every queue empty and
    no recording left in any site's ``recording/`` (no call being stored,
    no message waiting for its encoding) on two polls in a row. Bounded by
    SETTLE_TIMEOUT_S; returns (seconds waited, timed out, last error)."""
    start = time.time()
    last_error = None
    quiet_polls = 0
    while True:
        try:
            snap = _snapshot(sites, all_folders=False)
            queued = sum(len(q) for (_, q) in snap.values())
            recording = sum(len(s.recording_sidecars()) for s in sites.values())
            if queued == 0 and not _missing(snap, answered, excused):
                return time.time() - start, False, None
            quiet_polls = quiet_polls + 1 if queued == 0 and recording == 0 else 0
            if quiet_polls >= 2:
                return time.time() - start, False, None
        except SiteError as e:
            last_error = str(e)
        if time.time() - start > SETTLE_TIMEOUT_S:
            return time.time() - start, True, last_error
        time.sleep(POLL_S)


def evaluate(sites, answered, excused):
    """The promise, checked; returns (figures, violations). Each violation
    is one line naming the call or message."""
    violations = []
    try:
        snap = _snapshot(sites, all_folders=True)
    except SiteError as e:
        return {}, [f"cannot read the sites' state: {e}"]
    figures = {"recorded": 0, "partial": 0, "lost": 0, "duplicated": 0,
               "excused": 0, "unexpected": 0, "files_checked": 0}

    by_id = {}  # id -> [(letter, message)]
    for letter, (messages, queue) in snap.items():
        site = sites[letter]
        seen = set()
        for m in messages:
            mid = m.get("id")
            if mid in seen:
                violations.append(f"site-{letter} lists message {mid} twice")
                figures["duplicated"] += 1
            seen.add(mid)
            by_id.setdefault(mid, []).append((letter, m))
            path = site.audio_path(m)
            if not os.path.exists(path):
                violations.append(f"site-{letter}: message {mid} (mailbox {m.get('mailbox')}) "
                                  f"has no file {path}")
                continue
            figures["files_checked"] += 1
            digest = sha256_of(path)
            if digest != m.get("sha256"):
                violations.append(f"site-{letter}: message {mid} file sha256 {digest} "
                                  f"!= listed {m.get('sha256')}")
            size = os.path.getsize(path)
            if size != m.get("size_bytes"):
                violations.append(f"site-{letter}: message {mid} file is {size} bytes, "
                                  f"listed {m.get('size_bytes')}")
            home = home_of(m["mailbox"])
            delivery = m.get("delivery")
            if delivery == "home" and home != letter:
                violations.append(f"site-{letter} holds message {mid} for mailbox "
                                  f"{m['mailbox']} as home, but its home is site-{home}")
            if delivery != "home" and delivery != "delivered":
                violations.append(f"site-{letter}: message {mid} for site-{home} is "
                                  f"'{delivery}', not delivered")
        for entry in queue:
            violations.append(f"site-{letter}: queue not empty: {entry.get('id')} for "
                              f"{entry.get('peer')} ({entry.get('state')}, "
                              f"{entry.get('attempts')} attempts, {entry.get('last_error')})")

    # The copies of one message agree, and each has one home copy.
    for mid, copies in by_id.items():
        digests = {m.get("sha256") for (_, m) in copies}
        if len(digests) > 1:
            violations.append(f"message {mid} differs between sites: "
                              f"{[(l, m.get('sha256')) for (l, m) in copies]}")
        homes = [l for (l, m) in copies if m.get("delivery") == "home"]
        if len(homes) != 1:
            violations.append(f"message {mid} has {len(homes)} home copies "
                              f"({[(l, m.get('delivery')) for (l, m) in copies]})")

    # Every answered call: exactly one message at home.
    answered_ids = {c.call_id for c in answered}
    for call in answered:
        home_msgs = [m for m in snap[call.home][0]
                     if m.get("call_id") == call.call_id and m.get("delivery") == "home"]
        if len(home_msgs) == 1:
            figures["recorded"] += 1
            if home_msgs[0].get("partial"):
                figures["partial"] += 1
        elif not home_msgs:
            if call.call_id in excused:
                figures["excused"] += 1
            else:
                figures["lost"] += 1
                others = [(l, m.get("id"), m.get("delivery")) for l, (ms, _) in snap.items()
                          for m in ms if m.get("call_id") == call.call_id]
                violations.append(f"LOST: {call.describe()}: no message at site-{call.home}"
                                  f"{'; elsewhere: ' + str(others) if others else ''}")
        else:
            figures["duplicated"] += len(home_msgs) - 1
            violations.append(f"DUPLICATE: {call.describe()}: {len(home_msgs)} messages at "
                              f"site-{call.home}: {[m.get('id') for m in home_msgs]}")
    # Messages for calls SIPp never saw answered: the 200 was lost or came
    # after SIPp gave up. Counted, not a violation.
    for letter, (messages, _) in snap.items():
        for m in messages:
            if m.get("delivery") == "home" and m.get("call_id") not in answered_ids:
                figures["unexpected"] += 1
    return figures, violations


_DELIVERED = re.compile(r"peer\{name=site-([abc])\}.*delivered to its home id=([0-9a-f-]{36})")
_STORED = re.compile(r"message stored id=([0-9a-f-]{36}).*home=Some\(\"site-([abc])\"\)")
_RECOVERED = re.compile(r"recovered a message after a crash id=([0-9a-f-]{36}) mailbox=(\d+)")


def return_to_delivery(sites, log_offsets, returns):
    """For each message that waited for its home and was delivered after
    the home (or the path to it) came back: the time from that return to
    its delivery. Returns the longest, with what it was, or None.

    A message waited if it was stored (or recovered) before the return;
    the return counted is the last one, for that sender and home, between
    its storing and its delivery."""
    stored = {}  # id -> (sender, home, epoch)
    delivered = []  # (sender, home, id, epoch)
    for letter, site in sites.items():
        for line in site.log_lines(log_offsets[letter]):
            t = log_time(line)
            if t is None:
                continue
            m = _STORED.search(line)
            if m:
                stored.setdefault(m.group(1), (letter, m.group(2), t))
                continue
            m = _RECOVERED.search(line)
            if m:
                home = home_of(m.group(2))
                if home != letter:
                    stored.setdefault(m.group(1), (letter, home, t))
                continue
            m = _DELIVERED.search(line)
            if m:
                delivered.append((letter, m.group(1), m.group(2), t))
    longest = None
    for (sender, home, mid, t_delivered) in delivered:
        if mid not in stored:
            continue
        t_stored = stored[mid][2]
        candidates = [(t, why) for (s, h, t, why) in returns
                      if h == home and s in (None, sender) and t_stored < t <= t_delivered]
        if not candidates:
            continue
        t_return, why = max(candidates)
        wait = t_delivered - t_return
        if longest is None or wait > longest[0]:
            longest = (wait, f"{mid} site-{sender} -> site-{home} after {why}")
    return longest
