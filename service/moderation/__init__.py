"""Moderation: which comments wait for approval, what moderators do to them, blocked senders."""
