#!/usr/bin/env python3
"""Follows every account's entries (QueryService.StreamEntries) and keeps its
place in a file, so that a restart resumes where it stopped.

Each batch is handled (here: printed, one JSON line per entry), then its
resume token is saved (written to a temporary file, synced, renamed over the
old one). A consumer killed between the two handles that batch again after
its restart: at least once, never a gap. When the stream ends UNAVAILABLE
(the query service restarting, the read database away) it opens it again
from the saved token.

Generate the stubs first (the build does it into build/python), then:
    PYTHONPATH=build/python python3 consumer.py --token-file consumer.token
"""
import argparse
import json
import os
import sys
import time

import grpc

from bank.v1 import bank_pb2, bank_pb2_grpc


def load_token(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""  # From the first entry.


def save_token(path: str, token: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(token)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def handle(entry: bank_pb2.AccountEntry) -> None:
    e = entry.entry
    print(json.dumps({
        "account_id": entry.account_id,
        "version": e.version,
        "kind": bank_pb2.EntryKind.Name(e.kind),
        "amount": e.amount,
        "balance_after": e.balance_after,
        "position": e.position,
    }), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query-host", default="localhost:50052")
    parser.add_argument("--token-file", required=True,
                        help="where the resume token is kept")
    parser.add_argument("--max-batch", type=int, default=0,
                        help="entries per batch (0: the server's default)")
    args = parser.parse_args()

    queries = bank_pb2_grpc.QueryServiceStub(grpc.insecure_channel(args.query_host))
    pause = 0.2
    while True:
        token = load_token(args.token_file)
        request = bank_pb2.StreamEntriesRequest(resume_token=token,
                                                max_batch=args.max_batch)
        try:
            for batch in queries.StreamEntries(request):
                for entry in batch.entries:
                    handle(entry)
                save_token(args.token_file, batch.resume_token)
                pause = 0.2
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE:
                print(f"consumer: {e.code().name}: {e.details()}", file=sys.stderr)
                return 1
            print(f"consumer: stream ended ({e.details()}); resuming",
                  file=sys.stderr)
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
