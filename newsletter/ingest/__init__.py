"""Ingest: paper sources (listings, Hugging Face, arXiv) turned into paper files."""
