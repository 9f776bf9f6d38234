"""Proposers of candidate code: Claude through the anthropic SDK, an offline library of
known-good rewrites, and replay of recorded replies. See :mod:`pike_bench.llm.base`."""

from pike_bench.llm.base import ROLES, Proposer, ProposerError, Reply, Request

__all__ = ["ROLES", "Proposer", "ProposerError", "Reply", "Request"]
