"""Copy-paste examples of engines using waitgate (a package, so that ``examples/<engine>``
never shadows the engine's own package for mypy)."""
