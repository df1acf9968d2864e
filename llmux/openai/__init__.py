"""OpenAI's wire format: request validation, responses and SSE chunks."""
