"""Mail: render an issue once, assemble the MIME message, check it, build and preview it."""
