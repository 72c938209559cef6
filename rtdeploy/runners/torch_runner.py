"""Runner over a PyTorch module (eager, optionally channels_last / FP16 autocast on CUDA)."""

from __future__ import annotations

import numpy as np

from rtdeploy.runners.base import Runner


class TorchRunner(Runner):
    """Runs a ``torch.nn.Module`` with one input and one output.

    Args:
        model: the module (put in eval mode here).
        input_name, output_name: the names used in feeds and results, matching the ONNX model's.
        device: ``cpu`` or ``cuda``.
        channels_last: use the NHWC memory format (faster convolutions on CUDA).
        autocast_fp16: run under ``torch.autocast`` with FP16 (CUDA only).
    """

    def __init__(self, model, input_name: str = "input", output_name: str = "logits", *, device: str = "cpu",
                 channels_last: bool = False, autocast_fp16: bool = False):
        super().__init__()
        self.model = model
        self.device = device
        self.channels_last = channels_last
        self.autocast_fp16 = autocast_fp16
        self.input_names, self.output_names = [input_name], [output_name]
        tags = [device] + (["channels_last"] if channels_last else []) + (["fp16-autocast"] if autocast_fp16 else [])
        self.name = f"torch[{','.join(tags)}]"

    def _activate(self) -> None:
        import torch

        self.model = self.model.eval().to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def to_device(self, array: np.ndarray):
        """The torch tensor this runner feeds the model for ``array`` (on its device and memory format)."""
        import torch

        t = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t

    def forward_tensor(self, x):
        """Run the model on a tensor already on the device (used by the benchmark's device timing)."""
        import torch

        with torch.inference_mode():
            if self.autocast_fp16:
                with torch.autocast(device_type=self.device.split(":")[0], dtype=torch.float16):
                    return self.model(x)
            return self.model(x)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.forward_tensor(self.to_device(feed[self.input_names[0]]))
        return {self.output_names[0]: out.float().cpu().numpy()}
