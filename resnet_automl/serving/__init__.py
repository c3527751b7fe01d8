"""The TensorFlow edge: SavedModel export for TF Serving, its fresh-process check, prediction and
evaluation through the exported signatures.

`layout` and `verify` import no TensorFlow (the training process may run on JAX); `export`,
`predictor` and `evaluate` do.
"""
