"""Inbound mail: the SMTP/LMTP edge, the inbound queue, and the pipeline from bytes to a comment."""
