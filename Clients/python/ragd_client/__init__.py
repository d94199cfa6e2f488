"""Python client for the Ragd RAG server (official `protobuf` runtime)."""
from .client import RagdClient
from .aio import AsyncRagdClient
from .errors import RagdError, error_for, CODE_NAMES
from .errors import (Cancelled, InvalidArgument, DeadlineExceeded, NotFound, ResourceExhausted,
                     FailedPrecondition, Unimplemented, Internal, Unavailable)
from .wire import eq, ne, lt, lte, gt, gte, in_, exists, all_of, any_of, negate
from .ragd.v1 import ragd_pb2 as pb

__all__ = ["RagdClient", "AsyncRagdClient", "RagdError", "error_for", "CODE_NAMES", "pb",
           "Cancelled", "InvalidArgument", "DeadlineExceeded", "NotFound", "ResourceExhausted",
           "FailedPrecondition", "Unimplemented", "Internal", "Unavailable",
           "eq", "ne", "lt", "lte", "gt", "gte", "in_", "exists", "all_of", "any_of", "negate"]
