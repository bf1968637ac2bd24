"""Prediction on new CTs: input discovery, vertebra sources, the fold ensemble, outputs (`vfnet_predict`)."""
