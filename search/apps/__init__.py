"""The command-line apps (`attnas-search`, `-report`, `-export`, `-profile`, `-train`, `-cost`), their
typed Hydra configs and the validation that turns a bad command line into one line."""
