"""cairn-openai: OpenAI-compatible chat completions (whole and streamed) and embeddings.

Works with OpenAI and with servers that speak its API (vLLM, Ollama,
llama.cpp's server) through ``base_url``. Importing this package imports
nothing heavy: httpx is imported by the factories.
"""
