"""vmesh chaos run: the mesh's promise, measured.

    scripts/chaos.sh TRIALS [--seed N] [--json] [--keep] [--only-trial K]
                            [--stop-on-failure] [--clean]

A 3-site mesh over mutual TLS, each site in a network namespace of its own
with its data on a small tmpfs, takes calls for mailboxes homed at every
site while random faults strike (see faults.py); after each trial the
promise is checked (see check.py): every call that got a 200 OK has exactly
one message at its mailbox's home, none twice, every queue drained, every
file matching its sha256. Any violation fails the run; that trial's logs,
plan and data are kept.

Everything random comes from ``--seed`` (printed at the start): trial K's
calls and faults are drawn from ``random.Random(f"{seed}-{K}")``, so
``--seed S --only-trial K`` plays trial K again with the same plan (the
machine's timing is its own).

Run as root (namespaces, mounts, nftables). Everything it makes (processes,
namespaces ``vmesh-chaos-*``, tmpfs mounts, its directory in /tmp) is
removed on exit, on Ctrl-C and on failure; a run refuses to start while
leftovers of another exist (``--clean`` removes them and says what).
"""

import argparse
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import calls as calls_mod
import check
import faults as faults_mod
import net
import sites as sites_mod

LOCK_FILE = "/run/lock/vmesh-chaos.lock"
TMPFS_MB = 24
MIN_FREE_MB = 4
# The [mesh] keys of every site: pings every second while messages wait,
# down after three failures, retries from 1 s to 4 s, so failures and
# returns play out within a trial.
MESH_TIMINGS = {
    "ping_interval_s": 1,
    "ping_idle_interval_s": 5,
    "ping_timeout_s": 1,
    "failures_for_down": 3,
    "retry_initial_s": 1,
    "retry_max_s": 4,
    "transfer_timeout_s": 3,
    "max_in_flight": 8,
}
# Kept failing trials at most (their data is small; the run goes on).
MAX_KEPT = 10


def say(text):
    print(text, file=sys.stderr, flush=True)


class Interrupted(Exception):
    """SIGTERM (Ctrl-C raises KeyboardInterrupt)."""


def _on_sigterm(_signum, _frame):
    raise Interrupted()


# --- leftovers ------------------------------------------------------------------

def our_mounts():
    """Mount points of tmpfs file systems this tool mounted (source name)."""
    found = []
    with open("/proc/mounts") as f:
        for line in f:
            source, point, fstype = line.split()[:3]
            if source == net.PREFIX and fstype == "tmpfs":
                found.append(point)
    return found


def leftovers():
    """What a previous run left: namespaces, processes in them, mounts."""
    found = []
    for ns in net.existing_namespaces():
        for pid in net.namespace_pids(ns):
            found.append(("process", pid, ns))
        found.append(("namespace", ns, None))
    for point in our_mounts():
        found.append(("mount", point, None))
    return found


def remove_leftovers(verbose):
    """Kills the processes left in our namespaces (by pid), unmounts our
    tmpfs mounts, deletes our namespaces; returns the errors."""
    errors = []
    for ns in net.existing_namespaces():
        for pid in net.namespace_pids(ns):
            if verbose:
                say(f"chaos: killing process {pid} left in namespace {ns}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # Give the kernel a moment to reap them before the namespaces go.
    deadline = time.time() + 10
    while time.time() < deadline and any(net.namespace_pids(ns) for ns in net.existing_namespaces()):
        time.sleep(0.05)
    for point in our_mounts():
        if verbose:
            say(f"chaos: unmounting {point}")
        try:
            net.run(["umount", "-l", point])
        except net.CommandError as e:
            errors.append(str(e))
    if verbose:
        for ns in net.existing_namespaces():
            say(f"chaos: deleting namespace {ns}")
    errors.extend(net.delete())
    return errors


# --- set-up ---------------------------------------------------------------------

def make_certificates(binary, work):
    certs = os.path.join(work, "certs")
    net.run([binary, "certs", "init", "--dir", certs])
    for letter in net.SITES:
        net.run([binary, "certs", "issue", sites_mod.NAMES[letter], "--dir", certs])


def write_topology(work):
    text = '# The chaos mesh, written by scripts/chaos.\n[tls]\nca = "certs/ca.pem"\n'
    for letter in net.SITES:
        text += (f'\n[[server]]\nname = "{sites_mod.NAMES[letter]}"\n'
                 f'uri = "sip:{net.service_ip(letter)}:5061;transport=tls"\n'
                 f'mailboxes = ["{sites_mod.HOME_RANGE[letter]}"]\n')
    with open(os.path.join(work, "topology.toml"), "w") as f:
        f.write(text)


def make_clips(repo, work):
    """μ-law clips of speech (leading silence cut), one per length."""
    source = os.path.join(repo, "testdata", "speech-ulaw.wav")
    clips = {}
    for seconds in calls_mod.CLIP_SECONDS:
        path = os.path.join(work, f"clip-{seconds}.wav")
        net.run(["sox", source, "-e", "u-law", path, "silence", "1", "0.02", "-40d",
                 "trim", "0", str(seconds)])
        clips[seconds] = path
    return clips


# --- one trial ------------------------------------------------------------------

class Trial:
    def __init__(self, number, seed, work, sites, scenarios, calls_per_site):
        self.number = number
        self.seed = seed
        self.work = work
        self.sites = sites
        self.scenarios = scenarios
        self.rng = random.Random(f"{seed}-{number}")
        self.dir = os.path.join(work, "trials", f"{number:04d}")
        self.formats = {s: self.rng.choice(["wav", "opus"]) for s in net.SITES}
        n_calls = calls_per_site or self.rng.randint(2, 3)
        self.calls = calls_mod.plan_calls(self.rng, f"{seed}-{number}", n_calls)
        self.faults = faults_mod.plan_faults(self.rng, self.calls, self.formats)
        self.state = None
        self.violations = []
        self.figures = {}
        self.settle_s = None
        self.longest = None
        self.elapsed = None

    def plan(self):
        return {"trial": self.number, "seed": self.seed, "formats": self.formats,
                "calls": [c.plan() for c in self.calls],
                "faults": [f.record() for f in self.faults],
                "kills": self.state.kills if self.state else [],
                "returns": self.state.returns if self.state else [],
                "excused": sorted(self.state.unopened) if self.state else [],
                "figures": self.figures, "violations": self.violations}

    def run(self):
        started = time.time()
        os.makedirs(self.dir)
        net.reset()
        offsets = {}
        for letter, site in self.sites.items():
            site.mount_fs(TMPFS_MB)
            site.write_profile(self.formats[letter], MESH_TIMINGS, MIN_FREE_MB)
            site.log_path = os.path.join(self.dir, f"{site.name}.log")
            offsets[letter] = 0
        for site in self.sites.values():
            site.start()
        t0 = time.time() + 0.1
        self.state = faults_mod.TrialState(self.sites, self.calls, t0, offsets, MIN_FREE_MB)
        calls_mod.start_calls(self.calls, self.scenarios, self.dir, t0)
        faults_mod.start_faults(self.state, self.faults)
        if not faults_mod.wait_faults(self.faults, 120):
            self.violations.append("harness: a fault did not finish within 120 s")
        if not calls_mod.wait_calls(self.calls, calls_mod.CALL_TIMEOUT_S + 10):
            self.violations.append("harness: a call's SIPp did not exit in time")
            calls_mod.kill_calls(self.calls)
        self.heal()
        answered = [c for c in self.calls if c.answered()]
        excused = self.state.unopened
        self.settle_s, timed_out, error = check.settle(self.sites, answered, excused)
        if timed_out:
            self.violations.append(f"the mesh did not settle within {check.SETTLE_TIMEOUT_S} s"
                                   f"{' (' + error + ')' if error else ''}")
        for fault in self.faults:
            faults_mod.classify(self.state, fault)
        self.figures, violations = check.evaluate(self.sites, answered, excused)
        self.violations.extend(violations)
        self.figures["calls"] = len(self.calls)
        self.figures["answered"] = len(answered)
        self.longest = check.return_to_delivery(self.sites, offsets, self.state.returns)
        for fault in self.faults:
            if fault.error:
                self.violations.append(f"harness: fault {fault.kind} failed: {fault.error}")
        self.elapsed = time.time() - started

    def heal(self):
        """Undoes whatever a fault left (a fault thread that failed halfway):
        links up, no rules, no filler, every site serving."""
        net.reset()
        for letter, site in self.sites.items():
            site.unfill()
            if not site.running():
                try:
                    site.start()
                except sites_mod.SiteError as e:
                    self.violations.append(f"site-{letter} does not start: {e}")

    def teardown(self, keep_dir):
        """Stops the sites, keeps what a failure needs, unmounts."""
        for site in self.sites.values():
            if site.running():
                site.process.send_signal(signal.SIGTERM)
        for site in self.sites.values():
            if site.stop() is None:
                say(f"chaos: trial {self.number}: {site.name} did not stop on SIGTERM; killed")
        calls_mod.kill_calls(self.calls)
        if keep_dir:
            os.makedirs(keep_dir, exist_ok=True)
            for site in self.sites.values():
                if os.path.isdir(site.data):
                    shutil.copytree(site.data, os.path.join(keep_dir, f"data-{site.name}"),
                                    symlinks=True, ignore_dangling_symlinks=True)
            for name in os.listdir(self.dir):
                shutil.copy2(os.path.join(self.dir, name), keep_dir)
            with open(os.path.join(keep_dir, "trial.json"), "w") as f:
                json.dump(self.plan(), f, indent=2, default=str)
        for site in self.sites.values():
            site.unmount_fs()
        shutil.rmtree(self.dir, ignore_errors=True)

    def line(self, total):
        f = self.figures
        faults = "; ".join(x.describe() for x in self.faults)
        longest = f", return->delivery {self.longest[0]:.1f} s" if self.longest else ""
        return (f"trial {self.number}/{total}: {f.get('answered', 0)}/{f.get('calls', 0)} answered, "
                f"{f.get('recorded', 0)} recorded ({f.get('partial', 0)} partial"
                f"{', %d cut before recording' % f['excused'] if f.get('excused') else ''}), "
                f"lost {f.get('lost', 0)}, dup {f.get('duplicated', 0)}; faults: {faults}; "
                f"settled {self.settle_s or 0:.1f} s{longest}; {self.elapsed or 0:.1f} s")


# --- the run ----------------------------------------------------------------------

class Totals:
    def __init__(self):
        self.trials = 0
        self.failed = []
        self.faults = {k: {"planned": 0, "injected": 0, "landed": {}} for k in faults_mod.KINDS}
        self.figures = {}
        self.longest = None
        self.seconds = 0.0

    def add(self, trial):
        self.trials += 1
        self.seconds += trial.elapsed or 0.0
        if trial.violations:
            self.failed.append(trial.number)
        for fault in trial.faults:
            entry = self.faults[fault.kind]
            entry["planned"] += 1
            if fault.injected:
                entry["injected"] += 1
                entry["landed"][fault.landed] = entry["landed"].get(fault.landed, 0) + 1
        for key, value in trial.figures.items():
            self.figures[key] = self.figures.get(key, 0) + value
        if trial.longest and (self.longest is None or trial.longest[0] > self.longest[0]):
            self.longest = (trial.longest[0], f"trial {trial.number}: {trial.longest[1]}")

    def summary(self, seed):
        g = self.figures.get
        return {
            "seed": seed,
            "trials": self.trials,
            "failed_trials": self.failed,
            "seconds_per_trial": round(self.seconds / self.trials, 2) if self.trials else None,
            "faults": self.faults,
            "faults_injected": sum(v["injected"] for v in self.faults.values()),
            "calls": g("calls", 0),
            "answered": g("answered", 0),
            "recorded": g("recorded", 0),
            "partial": g("partial", 0),
            "answered_cut_before_recording": g("excused", 0),
            "unexpected": g("unexpected", 0),
            "lost": g("lost", 0),
            "duplicated": g("duplicated", 0),
            "files_checked": g("files_checked", 0),
            "longest_return_to_delivery_s": round(self.longest[0], 3) if self.longest else None,
            "longest_return_to_delivery": self.longest[1] if self.longest else None,
        }


def print_summary(s):
    print(f"chaos: seed {s['seed']}: {s['trials']} trials ({s['seconds_per_trial']} s each), "
          f"{len(s['failed_trials'])} failed {s['failed_trials'] or ''}")
    print(f"faults injected: {s['faults_injected']}")
    for kind, v in s["faults"].items():
        landed = ", ".join(f"{n} {where}" for where, n in sorted(v["landed"].items()))
        print(f"  {kind:<28} {v['injected']:>5} of {v['planned']:>5} planned"
              f"{'  (' + landed + ')' if landed else ''}")
    print(f"calls: {s['calls']} placed, {s['answered']} answered (200 OK)")
    print(f"messages recorded at their homes: {s['recorded']} ({s['partial']} partial); "
          f"answered but cut before the recording opened: {s['answered_cut_before_recording']}")
    print(f"lost: {s['lost']}  duplicated: {s['duplicated']}  "
          f"(files checked against their sha256: {s['files_checked']})")
    if s["longest_return_to_delivery_s"] is not None:
        print(f"longest return -> last delivery: {s['longest_return_to_delivery_s']:.2f} s "
              f"({s['longest_return_to_delivery']})")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="chaos.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("trials", type=int, nargs="?", default=0, help="number of trials")
    p.add_argument("--seed", type=int, default=None, help="the run's seed (default: random)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--keep", action="store_true", help="keep the working directory")
    p.add_argument("--only-trial", type=int, default=None,
                   help="run only trial K of the seed (same plan)")
    p.add_argument("--calls-per-site", type=int, default=0,
                   help="calls per site and trial (default: 2 or 3, drawn)")
    p.add_argument("--stop-on-failure", action="store_true", help="stop at the first failed trial")
    p.add_argument("--clean", action="store_true",
                   help="remove what an interrupted run left, and exit")
    p.add_argument("--binary", required=True, help=argparse.SUPPRESS)
    p.add_argument("--repo", required=True, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.clean and args.trials < 1 and args.only_trial is None:
        p.error("give the number of trials")
    return args


def main(argv):
    args = parse_args(argv)
    if os.geteuid() != 0:
        say("chaos: needs root (network namespaces, mounts, nftables)")
        return 2
    os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
    lock = open(LOCK_FILE, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"chaos: another chaos run holds {LOCK_FILE}")
        return 2
    if args.clean:
        found = leftovers()
        if not found:
            say("chaos: nothing left over")
            return 0
        errors = remove_leftovers(verbose=True)
        for e in errors:
            say(f"chaos: {e}")
        return 1 if errors else 0
    found = leftovers()
    if found:
        say("chaos: leftovers of an earlier run exist; remove them with `scripts/chaos.sh --clean`:")
        for what, name, where in found:
            say(f"  {what} {name}{' in ' + where if where else ''}")
        return 2

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**9)
    if args.only_trial is not None:
        numbers = [args.only_trial]
    else:
        numbers = list(range(1, args.trials + 1))
    say(f"chaos: seed {seed}, {len(numbers)} trial(s); replay with --seed {seed}")

    signal.signal(signal.SIGTERM, _on_sigterm)
    work = tempfile.mkdtemp(prefix="vmesh-chaos.", dir="/tmp")
    binary = os.path.join(work, "vmesh")
    shutil.copy2(args.binary, binary)
    sites = {l: sites_mod.Site(l, work, binary) for l in net.SITES}
    totals = Totals()
    kept = 0
    status = 0
    trial = None
    try:
        make_certificates(binary, work)
        write_topology(work)
        scenarios = calls_mod.write_scenarios(work, make_clips(args.repo, work))
        net.create()
        for number in numbers:
            trial = Trial(number, seed, work, sites, scenarios, args.calls_per_site)
            keep_dir = None
            try:
                trial.run()
            finally:
                if trial.violations and kept < MAX_KEPT:
                    keep_dir = os.path.join(work, "failed", f"trial-{number:04d}")
                    kept += 1
                trial.teardown(keep_dir)
            totals.add(trial)
            say(trial.line(len(numbers)))
            if trial.violations:
                say(f"chaos: TRIAL {number} FAILED (seed {seed}, replay: --seed {seed} "
                    f"--only-trial {number})")
                say("  faults: " + "; ".join(f.describe() for f in trial.faults))
                for v in trial.violations:
                    say(f"  {v}")
                if keep_dir:
                    say(f"  logs, plan and data kept in {keep_dir}")
                if args.stop_on_failure:
                    break
            trial = None
    except (KeyboardInterrupt, Interrupted):
        say("chaos: interrupted; cleaning up")
        status = 130
    except Exception:
        say(f"chaos: harness error in trial {trial.number if trial else '-'} (seed {seed})")
        import traceback
        traceback.print_exc()
        status = 3
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        calls_mod.stop_all(trial.calls if trial is not None else [])
        for site in sites.values():
            site.close()
        errors = remove_leftovers(verbose=False)
        for e in errors:
            say(f"chaos: cleanup: {e}")
        # An interrupted run keeps its directory only if a trial failed.
        keep = args.keep or totals.failed or status == 3
        if keep:
            say(f"chaos: working directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    summary = totals.summary(seed)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print_summary(summary)
    if status:
        return status
    return 1 if totals.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
