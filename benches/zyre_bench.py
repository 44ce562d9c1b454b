#!/usr/bin/env python3
"""Zyre (Python pyre, PyPI `zeromq-pyre`) figures beside lanpeer's: stream, fan-out, late join.

Run by `cargo bench --bench lanpeer_bench` (which starts it inside `unshare -n`, a fresh network
namespace whose only interface is `lo`). Prints one `zyre KEY VALUE` line per figure.

NETWORK SAFETY. pyre picks the first non-loopback IPv4 interface for its UDP beacons and its
`set_interface` is a no-op ("not implemented"), and ZSYS_INTERFACE is a CZMQ setting that pyre
never reads. So this script (1) refuses to run unless the only network interface it can see is
loopback (true inside `unshare -n`), and (2) replaces ZBeacon._prepare_socket so that the beacon
binds and sends to 127.255.255.255 only. Nodes bind their ZeroMQ inbox to tcp://* of that
namespace, which holds nothing but lo. Every loop is bounded in count and time.

Fan-out and late join are measured two ways where both fit: all nodes in this one process, and
the receivers in worker processes of PER_WORKER (this script again, `--worker`, in the same
namespace; they leave when their stdin closes and are bounded by the same alarm). Each figure
reported is the better of the two for Zyre; `zyre_way` lines show both.
"""

import ipaddress
import os
import queue
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

QUICK = "--quick" in sys.argv
TEXT = b"z" * 100


def refuse(why):
    print(f"zyre_error {why}", flush=True)
    sys.exit(3)


# ---- loopback only, checked before anything is started ----------------------------------------
names = [n for _, n in socket.if_nameindex()]
if names != ["lo"]:
    refuse(f"interfaces {names} visible: run only inside `unshare -n` (lo only)")

try:
    import zmq
    from pyre import Pyre, zbeacon, zhelper
except ImportError as e:  # pragma: no cover
    refuse(f"pyre not importable: {e}")

for iface in zhelper.get_ifaddrs():
    for name, data in iface.items():
        addr = (data.get(2) or {}).get("addr")
        if addr and not ipaddress.ip_address(addr if isinstance(addr, str) else addr.decode()).is_loopback:
            refuse(f"non-loopback address {addr} on {name}")


def _loopback_only(self):
    self.address = ipaddress.IPv4Address("127.0.0.1")
    self.network_address = ipaddress.IPv4Address("127.0.0.0")
    self.broadcast_address = ipaddress.IPv4Address("127.255.255.255")
    self.interface_name = "lo"


zbeacon.ZBeacon._prepare_socket = _loopback_only

WORKER = sys.argv[1:2] == ["--worker"]
signal.alarm(100 if QUICK else 400)  # hard stop: the whole script is bounded in time
PORT = int(sys.argv[2]) if WORKER else 20000 + random.randrange(40000)
GROUP = "BENCH"
# Every Pyre node holds a ZeroMQ socket per peer (and a descriptor or two for each): raise the
# context's socket limit (1,023 by default) and the process's descriptor limit.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
CTX = zmq.Context()
CTX.set(zmq.MAX_SOCKETS, 16384)
# Receivers per worker process in fanout_procs(): 101 nodes in one process would need ≈ 30,000
# descriptors (a DEALER socket per peer, its eventfd, and both ends of each TCP link), and one
# interpreter for 51 nodes makes them wait for each other's turn at the GIL (at 50, p50 11.5 ms
# in one process against 5.7 ms in processes of 10, the same minute). At 10 one process is
# Zyre's better way (1.8 against 2.0 ms).
PER_WORKER = 10


def node(name):
    n = Pyre(name, ctx=CTX)
    n.set_port(str(PORT).encode())
    n.join(GROUP)
    n.start()
    return n


def wait_peers(nodes, want, within, exact=False):
    deadline = time.time() + within
    while time.time() < deadline:
        if all((len(n.peers()) == want) if exact else (len(n.peers()) >= want) for n in nodes):
            return True
        time.sleep(0.02)
    return False


def drain(n):
    s = n.socket()
    while s.poll(0):
        n.recv()


def out(key, value):
    print(f"zyre {key} {value:.3f}", flush=True)


# Fan-out and late-join figures of each way of hosting the nodes, by key: the way that gives Zyre
# the better figure is the one reported (see best()).
WAYS = {}


def out_way(way, key, value):
    print(f"zyre_way {way} {key} {value:.3f}", flush=True)
    WAYS.setdefault(key, []).append((value, way))


def best():
    """Reports, for each fan-out and late-join key, the lower (better) of the ways measured."""
    for key, vals in WAYS.items():
        value, way = min(vals)
        print(f"zyre_note {key}: {way} is Zyre's better way here", flush=True)
        out(key, value)


def stream(count):
    a, b = node("a"), node("b")
    try:
        if not wait_peers([a, b], 1, 20):
            print("zyre_error stream peers did not meet", flush=True)
            return
        time.sleep(0.5)
        drain(a)
        drain(b)
        peer = b.uuid()
        got = 0
        bs = b.socket()

        def send():
            for _ in range(count):
                a.whisper(peer, TEXT)

        t0 = time.time()
        th = threading.Thread(target=send, daemon=True)
        th.start()
        last = time.time()
        while got < count and time.time() - last < 5 and time.time() - t0 < 60:
            if bs.poll(100):
                m = b.recv()
                if m[0] == b"WHISPER":
                    got += 1
                    last = time.time()
        el = (last if got else time.time()) - t0
        if got < count:
            print(f"zyre_note stream only {got} of {count} whispers arrived", flush=True)
        out("stream_msgs_per_s", got / el)
    finally:
        for n in (a, b):
            n.stop()


def late_join(n, way):
    """One node joins a room of n: the time until it lists all n. Returns it (to be stopped)."""
    t1 = time.time()
    late = node("late")
    while len(late.peers()) < n and time.time() - t1 < 30:
        time.sleep(0.005)
    if len(late.peers()) >= n:
        out_way(way, f"late_join_{n}_ms", (time.time() - t1) * 1e3)
    else:
        print(f"zyre_error late joiner to {n} did not list all within 30 s", flush=True)
    return late


def fanout(n, rounds):
    sender = node("s")
    recv = [node(f"r{i}") for i in range(n)]
    allnodes = [sender] + recv
    try:
        if not wait_peers(allnodes, n, 60):
            print(f"zyre_error fanout {n}: peers did not all meet within 60 s", flush=True)
            return
        time.sleep(1.0)  # let the JOIN messages settle
        for x in allnodes:
            drain(x)
        poller = zmq.Poller()
        sock = {}
        for i, r in enumerate(recv):
            poller.register(r.socket(), zmq.POLLIN)
            sock[r.socket()] = (i, r)
        lat = []
        for rnd in range(rounds + 3):
            tag = b"%08d" % rnd
            t0 = time.time()
            sender.shout(GROUP, tag + TEXT[8:])
            got, last = set(), t0
            while len(got) < n and time.time() - t0 < 5:
                for s, _ in poller.poll(100):
                    i, r = sock[s]
                    m = r.recv()
                    if m[0] == b"SHOUT" and m[-1][:8] == tag:
                        got.add(i)
                        last = time.time()
            if rnd >= 3 and len(got) == n:
                lat.append(last - t0)
        drain(sender)
        lat.sort()
        if lat:
            out_way("one process", f"fanout_{n}_p50_ms", lat[(len(lat) - 1) // 2] * 1e3)
            out_way("one process", f"fanout_{n}_p99_ms", lat[round((len(lat) - 1) * 0.99)] * 1e3)
        # Late joiner to a room of n: the sender leaves first, then one node joins; time until
        # it lists all n.
        sender.stop()
        allnodes.remove(sender)
        if not wait_peers(recv, n - 1, 20, exact=True):
            print("zyre_error the sender's leave was not seen", flush=True)
        allnodes.append(late_join(n, "one process"))
    finally:
        for x in allnodes:
            x.stop()


def worker(first, count, want):
    """A worker process of fan-out_procs: `count` receivers; prints `ready` once each lists
    `want` peers, then `got NODE TAG TIME` for every SHOUT; leaves when its stdin closes."""
    recv = [node(f"r{first + i}") for i in range(count)]
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    poller = zmq.Poller()
    sock = {}
    for i, r in enumerate(recv):
        poller.register(r.socket(), zmq.POLLIN)
        sock[r.socket()] = (first + i, r)
    ready = False
    while True:
        if not ready and all(len(r.peers()) >= want for r in recv):
            print("ready", flush=True)
            ready = True
        for s, _ in poller.poll(50):
            i, r = sock[s]
            m = r.recv()
            if m[0] == b"SHOUT":
                print(f"got {i} {m[-1][:8].decode()} {time.time():.6f}", flush=True)


def fanout_procs(n, rounds):
    """fanout() for a room too big for one process: the receivers run in worker processes of
    PER_WORKER (this script again, in the same network namespace), each stamping the time it got
    a SHOUT; the sender and the late joiner run here. Same keys as fanout()."""
    k = (n + PER_WORKER - 1) // PER_WORKER
    lines = queue.Queue()
    procs = []
    sender = late = None
    try:
        for w in range(k):
            first, count = w * n // k, (w + 1) * n // k - w * n // k
            args = [sys.executable, __file__, "--worker", str(PORT), str(first), str(count), str(n)]
            p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            procs.append(p)
            threading.Thread(target=lambda p=p: [lines.put(x.split()) for x in p.stdout], daemon=True).start()
        sender = node("s")
        ready, deadline = 0, time.time() + 90
        while ready < k and time.time() < deadline:
            try:
                ready += lines.get(timeout=0.1) == ["ready"]
            except queue.Empty:
                pass
        if ready < k or not wait_peers([sender], n, max(1, deadline - time.time())):
            print(f"zyre_error fanout {n}: peers did not all meet within 90 s", flush=True)
            return
        time.sleep(1.0)  # let the JOIN messages settle
        drain(sender)
        lat = []
        for rnd in range(rounds + 3):
            tag = "%08d" % rnd
            t0 = time.time()
            sender.shout(GROUP, tag.encode() + TEXT[8:])
            got, last = set(), t0
            while len(got) < n and time.time() - t0 < 5:
                try:
                    m = lines.get(timeout=0.1)
                except queue.Empty:
                    continue
                if m[0] == "got" and m[2] == tag:
                    got.add(int(m[1]))
                    last = max(last, float(m[3]))
            if rnd >= 3 and len(got) == n:
                lat.append(last - t0)
        lat.sort()
        if lat:
            out_way(f"processes of {PER_WORKER}", f"fanout_{n}_p50_ms", lat[(len(lat) - 1) // 2] * 1e3)
            out_way(f"processes of {PER_WORKER}", f"fanout_{n}_p99_ms", lat[round((len(lat) - 1) * 0.99)] * 1e3)
        if len(lat) < rounds:
            print(f"zyre_note fanout {n}: {rounds - len(lat)} of {rounds} rounds not complete within 5 s", flush=True)
        # Late joiner to a room of n, as in fanout(): the sender leaves, one node joins.
        sender.stop()
        sender = None
        time.sleep(1.0)
        late = late_join(n, f"processes of {PER_WORKER}")
    finally:
        for x in (sender, late):
            if x is not None:
                x.stop()
        for p in procs:
            p.stdin.close()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if WORKER:
    worker(int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
stream(5000 if QUICK else 20000)
# Each size both ways where both fit in the descriptors (one process, and worker processes of
# PER_WORKER nodes); Zyre's better figure is the one compared with ours.
fanout(10, 30 if QUICK else 100)
fanout_procs(10, 30 if QUICK else 100)
if not QUICK:
    fanout(50, 50)
    fanout_procs(50, 50)
    fanout_procs(100, 50)
    # 200, as the convergence's largest room: Zyre's late join to 200 beside ours. Our own fan-out
    # stops at 100 (201 nodes in one process would need 40,200 descriptors).
    fanout_procs(200, 30)
best()
print("zyre done", flush=True)
os._exit(0)
