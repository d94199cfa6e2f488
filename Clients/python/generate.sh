#!/usr/bin/env bash
# Regenerates ragd_client/ragd/v1/ragd_pb2.py from Protos/ (protoc from Debian's protobuf-compiler).
set -euo pipefail
cd "$(dirname "$0")"
protoc -I ../../Protos --python_out=ragd_client ../../Protos/ragd/v1/ragd.proto
touch ragd_client/ragd/__init__.py ragd_client/ragd/v1/__init__.py
