#!/usr/bin/env python3
"""Prints a TCP port on 127.0.0.1 that is free now, for a server to listen on.

The port is chosen below the kernel's ephemeral range. A port from bind(0)
comes from that range, which is also where every outgoing connection takes its
source port: released again, it can be taken by a connection (to PostgreSQL,
or from a test running beside) before the server binds it.
"""
import random
import socket


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def can_bind(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def main():
    low, high = 10000, ephemeral_low()
    if high - low >= 1000:
        for _ in range(1000):
            port = random.randrange(low, high)
            if can_bind(port):
                print(port)
                return
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


if __name__ == "__main__":
    main()
