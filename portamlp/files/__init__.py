"""Files: model files (JSON, safetensors), checkpoints and run records."""
