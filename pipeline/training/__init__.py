"""Stage 3, training on the cache: heads, k-fold, fine-tuning, experiments."""
