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
"""

import ipaddress
import os
import random
import signal
import socket
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

signal.alarm(100 if QUICK else 280)  # hard stop: the whole script is bounded in time
PORT = 20000 + random.randrange(40000)
GROUP = "BENCH"
CTX = zmq.Context()


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
            out(f"fanout_{n}_p50_ms", lat[(len(lat) - 1) // 2] * 1e3)
            out(f"fanout_{n}_p99_ms", lat[round((len(lat) - 1) * 0.99)] * 1e3)
        # Late joiner to a room of n: the sender leaves first, then one node joins; time until
        # it lists all n.
        sender.stop()
        allnodes.remove(sender)
        if not wait_peers(recv, n - 1, 20, exact=True):
            print("zyre_error the sender's leave was not seen", flush=True)
        t1 = time.time()
        late = node("late")
        allnodes.append(late)
        while len(late.peers()) < n and time.time() - t1 < 30:
            time.sleep(0.005)
        if len(late.peers()) >= n:
            out(f"late_join_{n}_ms", (time.time() - t1) * 1e3)
        else:
            print(f"zyre_error late joiner to {n} did not list all within 30 s", flush=True)
    finally:
        for x in allnodes:
            x.stop()


stream(5000 if QUICK else 20000)
fanout(10, 30 if QUICK else 100)
if not QUICK:
    fanout(50, 50)
print("zyre done", flush=True)
os._exit(0)
