"""Predictions from an exported model: `load_model` over a SavedModel or a LiteRT/ONNX file, top-k
rows, and folders of images to CSV/JSONL with memory flat in their number.

Owns: `predictor` (`load_model`, the SavedModel predictor), `edge_predictor` (the .tflite/.onnx
predictor), `ranking` (top-k rows), `batch_predict` (streamed predictions to a file).
"""
