"""Training and Wald's-protocol evaluation of the project's own model (reads ../shared/data; never ships it)."""
