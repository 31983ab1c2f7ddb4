"""Search: the Optuna study driven by Hydra, and the analysis of its results."""
