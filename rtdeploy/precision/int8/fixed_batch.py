"""Run a fixed-batch model on any number of samples: in batches of its own size.

A model exported with a fixed batch B (``--batch 8``, or an imported one) only takes inputs of
exactly B samples, and its graph may bake B into constants (a ``Reshape`` to ``(8, -1)``), so it
cannot simply be relaxed to a dynamic batch. Calibration and the fallback search therefore feed it
B samples at a time; the last, partial chunk is zero-padded and the padded rows are cut from every
output before statistics see them, so the statistics are exactly those of the real samples.
"""

from __future__ import annotations

import numpy as np


def fixed_batch_of(model) -> int | None:
    """The first graph input's fixed batch size, or None when the batch axis is dynamic."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    dims = inputs[0].type.tensor_type.shape.dim if inputs else []
    return int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None


class FixedBatchSession:
    """An onnxruntime session wrapper: ``run`` takes any number of samples of the batched input.

    Args:
        session: the ``onnxruntime.InferenceSession``.
        batch: the model's fixed batch size.
        batched_input: the input whose first axis is the batch (the image input); other inputs
            (a quantization mask, say) are passed unchanged with every chunk.
    """

    def __init__(self, session, batch: int, batched_input: str):
        self.session, self.batch, self.batched_input = session, batch, batched_input

    def __getattr__(self, name):  # get_inputs(), get_outputs() ... of the wrapped session
        return getattr(self.session, name)

    def run(self, names, feed: dict):
        """Outputs ``names`` for ``feed``, computed ``batch`` samples at a time."""
        data = feed[self.batched_input]
        n, b = len(data), self.batch
        if n == b:
            return self.session.run(names, feed)
        parts = []
        for start in range(0, n, b):
            chunk = data[start:start + b]
            count = len(chunk)
            if count < b:
                chunk = np.concatenate([chunk, np.zeros((b - count, *chunk.shape[1:]), dtype=chunk.dtype)])
            outs = self.session.run(names, {**feed, self.batched_input: chunk})
            parts.append([o[:count] for o in outs])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]
