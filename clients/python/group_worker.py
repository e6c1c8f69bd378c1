#!/usr/bin/env python3
"""One worker of a consumer group (QueryService.Consume): the group's workers
share the accounts, and each account's entries go, in order, to the one
worker that owns its partition at the time.

Each entry is handled (here: printed, one JSON line with the worker's name)
and then acknowledged; the server keeps the group's progress. A worker that
dies loses nothing: what it had not acknowledged goes to the worker that
takes its partitions (at least once). When the stream ends UNAVAILABLE (the
query service restarting) it joins again; after a crash its name is held
until its lease runs out (ALREADY_EXISTS), and it keeps trying.

Generate the stubs first (the build does it into build/python), then run
three, and stop one to see the others take over its partitions:
    PYTHONPATH=build/python python3 group_worker.py --group notify --member w1
"""
import argparse
import json
import queue
import sys
import time

import grpc

from bank.v1 import bank_pb2, bank_pb2_grpc


def handle(member: str, entry: bank_pb2.AccountEntry) -> None:
    e = entry.entry
    print(json.dumps({
        "member": member,
        "account_id": entry.account_id,
        "version": e.version,
        "kind": bank_pb2.EntryKind.Name(e.kind),
        "amount": e.amount,
        "balance_after": e.balance_after,
        "position": e.position,
    }), flush=True)


def consume(queries, args) -> None:
    """One connection: joins, then handles and acknowledges until it ends."""
    requests: "queue.Queue[bank_pb2.ConsumeRequest]" = queue.Queue()
    start = (bank_pb2.JoinGroup.START_FROM_NOW if args.from_now
             else bank_pb2.JoinGroup.START_FROM_BEGINNING)
    requests.put(bank_pb2.ConsumeRequest(join=bank_pb2.JoinGroup(
        group=args.group, member=args.member, start=start,
        max_unacked=args.max_unacked)))
    try:
        for response in queries.Consume(iter(requests.get, None)):
            if response.HasField("assignment"):
                a = response.assignment
                print(f"group_worker {args.member}: partitions "
                      f"{list(a.partitions)} of {a.partition_count}",
                      file=sys.stderr, flush=True)
                continue
            handle(args.member, response.entry)
            requests.put(bank_pb2.ConsumeRequest(
                ack=bank_pb2.Ack(positions=[response.entry.entry.position])))
    finally:
        requests.put(None)  # Ends the request iterator.


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query-host", default="localhost:50052")
    parser.add_argument("--group", required=True)
    parser.add_argument("--member", required=True,
                        help="this worker's name, unique in the group")
    parser.add_argument("--from-now", action="store_true",
                        help="a new group starts at the latest entry")
    parser.add_argument("--max-unacked", type=int, default=0,
                        help="entries in flight at most (0: the server's default)")
    args = parser.parse_args()

    queries = bank_pb2_grpc.QueryServiceStub(grpc.insecure_channel(args.query_host))
    pause = 0.2
    while True:
        try:
            consume(queries, args)
            return 0  # The server ended the stream OK.
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.UNAVAILABLE,
                                grpc.StatusCode.ALREADY_EXISTS):
                print(f"group_worker: {e.code().name}: {e.details()}",
                      file=sys.stderr)
                return 1
            print(f"group_worker: {e.code().name} ({e.details()}); joining again",
                  file=sys.stderr, flush=True)
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
