"""One submission path: inline jobs, file jobs, retries and OpenAI batches are checked
against their task's contract, bucketed by length, cut into chunks and written in bulk
through the same steps."""
