"""The chaos mesh's network: one network namespace per site, joined pairwise.

Each site lives in a namespace of its own (``vmesh-chaos-a``, ``-b``, ``-c``)
that this module creates and deletes; nothing touches the host's own
interfaces or routes. A site's service address (``10.88.0.1`` for site-a,
the address in the topology) sits on the namespace's loopback, and each pair
of sites is joined by its own veth pair on a /30 of ``10.89.K.0``, with a
host route to the peer's service address over that link only. So the link
between two sites can fail while both keep the third:

- ``link_down``: one end of the pair goes down. That side loses its route
  at once (its connects fail with ENETUNREACH); the other side's end loses
  its carrier and what it sends vanishes.
- ``blackhole``: an nftables table inside one side's namespace drops every
  packet in and out of that link, silently: the WAN failure where nothing
  says so, and connects and requests hang until their own timeouts.

Callers (SIPp) run inside their site's namespace and call the site from
127.0.0.1, so calls never cross the links.
"""

import subprocess
import threading

PREFIX = "vmesh-chaos"
SITES = ("a", "b", "c")

# The pairs of sites and the third octet of their link's 10.89.K.0/30.
PAIRS = {("a", "b"): 1, ("a", "c"): 2, ("b", "c"): 3}

# Every command here is quick; a hang means a broken machine, not a fault.
COMMAND_TIMEOUT_S = 20


def namespace(site):
    """The namespace of site ``site`` (a letter)."""
    return f"{PREFIX}-{site}"


def service_ip(site):
    """The site's address in the topology, on its namespace's loopback."""
    return f"10.88.0.{SITES.index(site) + 1}"


def pair_of(x, y):
    """The pair (x, y) in PAIRS order."""
    return (x, y) if (x, y) in PAIRS else (y, x)


def device(x, y):
    """Site x's end of its link to site y (interface names stay short)."""
    return f"vc-{x}{y}"


def link_ip(x, y):
    """Site x's address on its link to site y."""
    low, high = pair_of(x, y)
    k = PAIRS[(low, high)]
    return f"10.89.{k}.{1 if x == low else 2}"


class CommandError(Exception):
    """A set-up or fault command failed; says which and why."""


def run(args, stdin=None):
    """Runs a command; raises CommandError with its stderr on failure."""
    try:
        out = subprocess.run(
            args,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CommandError(f"{' '.join(args)}: {e}") from e
    if out.returncode != 0:
        raise CommandError(f"{' '.join(args)}: exit {out.returncode}: {out.stderr.strip()}")
    return out.stdout


def ip(*args):
    return run(["ip", *args])


def existing_namespaces():
    """Names of this tool's namespaces that exist now."""
    out = run(["ip", "netns", "list"])
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(PREFIX + "-")]


def namespace_pids(name):
    """Processes running inside namespace ``name``."""
    try:
        out = run(["ip", "netns", "pids", name])
    except CommandError:
        return []
    return [int(p) for p in out.split()]


def create():
    """Makes the three namespaces and the three links. Whatever was made
    before a failure is left for ``delete`` (the caller's cleanup)."""
    for site in SITES:
        ns = namespace(site)
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "addr", "add", f"{service_ip(site)}/32", "dev", "lo")
    for (x, y) in PAIRS:
        ip("link", "add", device(x, y), "netns", namespace(x), "type", "veth",
           "peer", "name", device(y, x), "netns", namespace(y))
        for (me, other) in ((x, y), (y, x)):
            ns = namespace(me)
            ip("-n", ns, "addr", "add", f"{link_ip(me, other)}/30", "dev", device(me, other))
    reset()


def add_route(x, y):
    """Site x's route to site y's service address, over their link only."""
    ip("-n", namespace(x), "route", "replace", f"{service_ip(y)}/32",
       "via", link_ip(y, x), "dev", device(x, y), "src", service_ip(x))


def reset():
    """Every link up with its routes, no nftables rule anywhere: the state
    each trial starts from (idempotent)."""
    with _held_lock:
        _held.clear()
    for site in SITES:
        run(["ip", "netns", "exec", namespace(site), "nft", "flush", "ruleset"])
    for (x, y) in PAIRS:
        for (me, other) in ((x, y), (y, x)):
            ip("-n", namespace(me), "link", "set", device(me, other), "up")
    for (x, y) in PAIRS:
        for (me, other) in ((x, y), (y, x)):
            add_route(me, other)


def delete():
    """Deletes this tool's namespaces (and with them the veth pairs)."""
    errors = []
    for name in existing_namespaces():
        try:
            ip("netns", "delete", name)
        except CommandError as e:
            errors.append(str(e))
    return errors


# --- faults -----------------------------------------------------------------

# Faults of one trial may overlap on the same end of a link: the link
# stays down (or blackholed) until the last of them is over.
_held = {}
_held_lock = threading.Lock()


def _hold(key):
    """Counts one more fault on ``key``; true for the first."""
    with _held_lock:
        _held[key] = _held.get(key, 0) + 1
        return _held[key] == 1


def _release(key):
    """Counts one fault on ``key`` over; true for the last."""
    with _held_lock:
        _held[key] -= 1
        if _held[key] == 0:
            del _held[key]
            return True
        return False


def link_down(side, other):
    """Takes site ``side``'s end of its link to ``other`` down."""
    if _hold(("link", side, other)):
        ip("-n", namespace(side), "link", "set", device(side, other), "down")


def link_up(side, other):
    """Brings it back, with the route the kernel dropped with it, once no
    other fault holds it down."""
    if _release(("link", side, other)):
        ip("-n", namespace(side), "link", "set", device(side, other), "up")
        add_route(side, other)


def blackhole_table(other):
    return f"chaos_blackhole_{other}"


def blackhole(side, other):
    """Inside ``side``'s namespace, drops every packet on its link to
    ``other``, both ways, silently."""
    if not _hold(("blackhole", side, other)):
        return
    dev = device(side, other)
    rules = (
        f"table inet {blackhole_table(other)} {{\n"
        f"  chain input {{ type filter hook input priority 0; policy accept; iifname \"{dev}\" drop; }}\n"
        f"  chain output {{ type filter hook output priority 0; policy accept; oifname \"{dev}\" drop; }}\n"
        "}\n"
    )
    run(["ip", "netns", "exec", namespace(side), "nft", "-f", "-"], stdin=rules)


def unblackhole(side, other):
    if not _release(("blackhole", side, other)):
        return
    run(["ip", "netns", "exec", namespace(side), "nft", "delete", "table", "inet",
         blackhole_table(other)])
