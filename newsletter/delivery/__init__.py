"""Delivery: the send plan, the sending loop, rate limiting and the transports."""
