"""Batch prediction: apply a trained model to new images on any Beam runner."""
