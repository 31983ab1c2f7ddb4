"""The re-ID training library the evaluators use: data sets and their loaders, image plumbing,
losses, the bag-of-tricks trainer, the validation carve-out and the ranking metrics."""
