"""The TF Serving SavedModel: written with bytes and tensor signatures and a warm-up file, laid out
in integer version folders, checked in a fresh process, written by a TensorFlow child for a JAX parent.

Owns: `export`, `layout` (version folders, signature names; no TensorFlow), `verify`,
`tensorflow_process`, `rebuild` (a weights file's classifier on TensorFlow).
"""
