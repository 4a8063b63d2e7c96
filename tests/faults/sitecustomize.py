"""Fault injection for chaos tests, loaded only by worker processes started with this
directory on PYTHONPATH and SLUICE_TEST_FAULTS=1: an input holding `<<raise>>` makes the
encoder raise on any micro-batch that holds it, and an input holding `<<kill>>` kills the
worker process (as a segfault or the kernel's OOM killer would) when its chunk runs; a
chunk holding `<<slow>>` takes SLUICE_TEST_SLOW_SECONDS (default 0.5) longer, so a
job lasts long enough to be watched."""

import os
import time

if os.environ.get("SLUICE_TEST_FAULTS") == "1":
    from models import encoder

    _run, _tokenize, _tensors = (
        encoder.EncoderRunner.run,
        encoder.EncoderRunner.tokenize,
        encoder.EncoderRunner.tensors,
    )

    def _text(item):
        return item if isinstance(item, str) else " ".join(item)

    def run(self, inputs, *args, **kwargs):
        if any("<<kill>>" in _text(x) for x in inputs):
            os._exit(137)
        if any("<<slow>>" in _text(x) for x in inputs):
            time.sleep(float(os.environ.get("SLUICE_TEST_SLOW_SECONDS", "0.5")))
        return _run(self, inputs, *args, **kwargs)

    def tokenize(self, inputs, truncate, *args, **kwargs):
        encodings, full = _tokenize(self, inputs, truncate, *args, **kwargs)
        for item, enc in zip(inputs, encodings, strict=True):
            if "<<raise>>" in _text(item):
                enc["poison"] = [1]
        return encodings, full

    def tensors(self, encodings):
        if any("poison" in e for e in encodings):
            raise ValueError("injected fault: this input breaks the model")
        return _tensors(self, encodings)

    encoder.EncoderRunner.run = run
    encoder.EncoderRunner.tokenize = tokenize
    encoder.EncoderRunner.tensors = tensors
