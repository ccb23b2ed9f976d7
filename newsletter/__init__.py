"""newsletter: curate, render, send and archive research-paper digests."""

__version__ = "0.1.0"
