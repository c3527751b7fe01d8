"""The TensorFlow edge: the TF Serving SavedModel, the LiteRT and ONNX files, their fresh-process
checks, and prediction.

Owns: `export` (SavedModel with bytes and tensor signatures, warm-up file), `layout` (version
folders, signature names; no TensorFlow), `verify` (the fresh-process check), `predictor`
(`load_model` over an export), `tensorflow_process` (TensorFlow in a child process for a JAX parent),
`rebuild` (a weights file's classifier on TensorFlow), `formats` (LiteRT/ONNX names, files, extras;
no TensorFlow), `edge_export` (the converters), `edge_runtime` and `edge_verify` (run and check a
file in a fresh process), `edge_predictor` (`load_model` over a .tflite/.onnx), `batch_predict`
(predictions to CSV/JSONL), `ranking` (top-k rows).
May import: `modeling`, `weights`, `data` and below; never `report` or `pipeline`.
Entry points: `export_serving_model`, `verify_export`, `load_model`.
"""
