"""Deployment: exported model packages (TorchScript, ONNX, int8) and the HTTP server with its page."""
