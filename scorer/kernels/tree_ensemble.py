"""Family ``tree_ensemble`` (placeholder until the tree kernels land)."""
