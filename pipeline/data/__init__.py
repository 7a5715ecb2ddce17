"""Stage 1, the data: class folders and TFDS sources, decoding, augmentation, faces."""
