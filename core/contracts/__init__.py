"""What the API and the worker both know of models and requests, torch-free: model specs
and registry parsing, task params, item checks, OpenAI request checks, token counting."""
