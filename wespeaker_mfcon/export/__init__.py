"""Stage 5: the ONNX file (onnx.py) and its int8 variant (quantize.py)."""
