"""Images and tensors -> model inputs: preprocessing and streaming input sources."""

from rtdeploy.data.preprocess import IMAGE_SUFFIXES, load_image
from rtdeploy.data.sources import (
    Batch,
    ImageFolderSource,
    Source,
    SyntheticSource,
    TensorFileSource,
    open_source,
)

__all__ = ["IMAGE_SUFFIXES", "Batch", "ImageFolderSource", "Source", "SyntheticSource", "TensorFileSource", "load_image", "open_source"]
