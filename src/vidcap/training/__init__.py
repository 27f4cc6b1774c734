"""Training objectives (masking, alignment negatives, BART noise) and the training loop."""
