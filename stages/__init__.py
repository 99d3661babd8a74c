"""The DVC pipeline stages: one module per stage (see dvc.yaml), plus the few they share."""
