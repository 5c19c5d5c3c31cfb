"""Family ``tree_ensemble`` exporters (placeholder until the tree exporters land)."""
