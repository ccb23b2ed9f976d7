"""Archive: the static site with feeds, and publishing it."""
