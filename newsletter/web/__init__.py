"""The subscription web app behind `newsletter serve`."""
