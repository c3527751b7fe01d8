"""The files for runtimes other than TF Serving: LiteRT (float32, int8) and ONNX.

Owns: `formats` (names, files, extras, input contract; no TensorFlow), `export` (the converters, in
the TensorFlow process), `runtime` (runs a file with its own runtime: a script for a fresh process,
NumPy and the runtime only), `verify` (the fresh-process check on the test split).
"""
