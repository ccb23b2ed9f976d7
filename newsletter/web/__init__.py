"""The subscription web app behind `newsletter serve`: subscribe, confirm, one-click unsubscribe.

app (routes and HTTP), subscription (what a request changes), confirmation (the double
opt-in mail), pages (templates and words), ratelimit (per-client and per-address limits).
It sits on top, beside the CLI: it uses audience and the store for data and delivery's
transports for mail, and nothing below imports it.
"""
