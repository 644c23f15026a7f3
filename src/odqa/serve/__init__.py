"""The HTTP service and its web page (`odqa serve`); needs the `serve` extra (fastapi, uvicorn)."""
