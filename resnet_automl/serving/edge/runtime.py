"""Run a LiteRT (.tflite) or ONNX (.onnx) classifier on pixel arrays with its own runtime.

Imports only NumPy and the runtime (`ai_edge_litert`, `onnxruntime`): `predict` uses `EdgeRunner`
in this process, and the export check runs this file as a script in a fresh process
(`python runtime.py MODEL PIXELS.npy OUT.npz`), so nothing of the training process (Keras,
TensorFlow) can make a broken file look right.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

#: Images per runtime call.
BATCH = 32


class EdgeRunner:
    """A .tflite or .onnx classifier file, fed pixels [N, S, S, 3] 0..255.

    Attributes:
        path: Path of the model file.
        image_size: int, the input's side.
        input_dtype: numpy dtype of the input (float32, or uint8 for a full-integer LiteRT file).
    """

    def __init__(self, path):
        self.path = Path(path)
        if self.path.suffix == ".onnx":
            import onnxruntime

            self._session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            model_input = self._session.get_inputs()[0]
            self._input_name = model_input.name
            self.image_size = int(model_input.shape[1])
            self.input_dtype = np.dtype(np.float32)
            self._quantization = (0.0, 0)
        else:
            from ai_edge_litert.interpreter import Interpreter

            self._interpreter = Interpreter(model_path=str(self.path))
            self._input = self._interpreter.get_input_details()[0]
            self._output = self._interpreter.get_output_details()[0]
            self.image_size = int(self._input["shape_signature"][1])
            self.input_dtype = np.dtype(self._input["dtype"])
            self._quantization = tuple(self._input["quantization"])
            self._batch = None

    def _model_input(self, pixels: np.ndarray) -> np.ndarray:
        scale, zero_point = self._quantization
        if self.input_dtype.kind in "iu" and scale and (scale, zero_point) != (1.0, 0):
            info = np.iinfo(self.input_dtype)
            pixels = np.clip(np.rint(pixels.astype(np.float32) / scale + zero_point), info.min, info.max)
        return np.ascontiguousarray(pixels, dtype=self.input_dtype)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if hasattr(self, "_session"):
            return self._session.run(None, {self._input_name: batch})[0]
        if self._batch != len(batch):
            self._interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
            self._interpreter.allocate_tensors()
            self._batch = len(batch)
        self._interpreter.set_tensor(self._input["index"], batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"])

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """float32 probabilities [N, C] of pixels [N, S, S, 3] (values 0..255, any numeric dtype)."""
        pixels = np.asarray(pixels)
        if pixels.ndim != 4 or pixels.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"{self.path} takes pixels [N, {self.image_size}, {self.image_size}, 3]; "
                             f"got shape {pixels.shape}.")
        outputs = [np.array(self._run(self._model_input(pixels[start:start + BATCH])), dtype=np.float32)
                   for start in range(0, len(pixels), BATCH)]
        return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)

    def latency_ms(self, image: np.ndarray, runs: int = 30, warmup: int = 3) -> dict:
        """Milliseconds per call at batch 1 on `image` [S, S, 3]: {"p50", "p95"} over `runs` calls."""
        batch = self._model_input(image[None])
        times = []
        for index in range(warmup + runs):
            start = time.perf_counter()
            self._run(batch)
            if index >= warmup:
                times.append((time.perf_counter() - start) * 1000.0)
        return {"p50": round(float(np.percentile(times, 50)), 3), "p95": round(float(np.percentile(times, 95)), 3)}


def main(argv=None) -> int:
    """`python runtime.py MODEL PIXELS.npy OUT.npz`: probabilities into OUT.npz, latency as JSON."""
    model_path, inputs, output = (argv or sys.argv[1:])[:3]
    runner = EdgeRunner(model_path)
    pixels = np.load(inputs)
    np.savez(output, probabilities=runner.probabilities(pixels))
    latency = runner.latency_ms(pixels[0]) if len(pixels) else None
    print(json.dumps({"latency_ms": latency, "input_dtype": str(runner.input_dtype)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
