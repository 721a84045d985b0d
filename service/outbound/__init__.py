"""Outbound mail: composing, notifications, digests, notices, bounces, and the outbox."""
