"""Reports a person looks at: one issue's send, or every issue over time, as a self-contained HTML page.

- `figures`: the numbers, read from the ledger, the events and the engagement rows;
- `charts`: those numbers as inline SVG charts (matplotlib's SVG backend);
- `page`: the HTML page, every untrusted value escaped, nothing fetched from the network.
"""
