"""Stage 2, the features: backbones, the Beam embed job and the feature cache."""
