#!/usr/bin/env python3
"""Opens two accounts, moves money between them, and reads both balances with
read-your-writes (min_version), over the bank's public gRPC API.

Generate the stubs first (the build does it into build/python):
    protoc -I proto --python_out=OUT --grpc_python_out=OUT \
        --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
        proto/bank/v1/bank.proto
then run with PYTHONPATH=OUT:
    python3 example.py --command-host localhost:50051 --query-host localhost:50052
"""
import argparse
import sys
import uuid

import grpc

from bank.v1 import bank_pb2, bank_pb2_grpc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--command-host", default="localhost:50051")
    parser.add_argument("--query-host", default="localhost:50052")
    args = parser.parse_args()

    commands = bank_pb2_grpc.CommandServiceStub(grpc.insecure_channel(args.command_host))
    queries = bank_pb2_grpc.QueryServiceStub(grpc.insecure_channel(args.query_host))

    # Amounts are integer minor units: 100.00 EUR is 10000.
    alice = commands.OpenAccount(
        bank_pb2.OpenAccountRequest(command_id=str(uuid.uuid4()), owner="Alice",
                                    currency="EUR", initial_deposit=10000),
        timeout=10)
    bob = commands.OpenAccount(
        bank_pb2.OpenAccountRequest(command_id=str(uuid.uuid4()), owner="Bob",
                                    currency="EUR"),
        timeout=10)

    # Retrying with the same command_id is safe: it takes effect once.
    transfer_id = str(uuid.uuid4())
    request = bank_pb2.TransferRequest(command_id=transfer_id,
                                       from_account_id=alice.account_id,
                                       to_account_id=bob.account_id, amount=2550)
    result = commands.Transfer(request, timeout=10)
    again = commands.Transfer(request, timeout=10)
    assert getattr(again, "from").replayed, "a repeated command_id must replay"

    # Read your own writes: wait until the read model has these versions.
    for name, res in (("Alice", getattr(result, "from")), ("Bob", result.to)):
        balance = queries.GetBalance(
            bank_pb2.GetBalanceRequest(account_id=res.account_id,
                                       min_version=res.version),
            timeout=10)
        print(f"{name}: {balance.balance / 100:.2f} {balance.currency} "
              f"(version {balance.version})")

    try:
        commands.Withdraw(bank_pb2.WithdrawRequest(account_id=bob.account_id,
                                                   amount=10**9), timeout=10)
    except grpc.RpcError as err:
        print(f"Withdrawing too much: {err.code().name}: {err.details()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
