"""Video data: decoding, clip sampling, transforms, datasets, loaders, the synthetic motion set.

Typical use::

    from timesformer.data import VideoClipDataset, VideoReader, make_loader

    reader = VideoReader("clip.mp4")          # num_frames, fps, duration, size
    frames = reader.get_frames([0, 10, 20])   # uint8 (3, H, W, 3)
    train = VideoClipDataset.from_csv("train.csv", root="videos/", mode="train")
    loader = make_loader(train, batch_size=8, workers=4)
    batch = next(iter(loader))                # batch["video"]: float (8, 3, 8, 224, 224)

Public data sets in their official layouts become such lists with ``read_ucf101`` (and
``read_kinetics``, ``read_ssv2``, ``read_hmdb51``) and ``write_prepared``: see
``timesformer.data.prepare`` and ``timesformer data prepare``.
"""

from timesformer.data.datasets import ClipConfig, VideoClipDataset, read_class_names
from timesformer.data.errors import DatasetError, VideoDecodeError
from timesformer.data.loader import (
    DecodeFailures,
    collate_clips,
    make_loader,
    set_epoch,
    worker_init_fn,
)
from timesformer.data.prepare import (
    Prepared,
    PrepareSummary,
    read_hmdb51,
    read_kinetics,
    read_ssv2,
    read_ucf101,
    write_prepared,
)
from timesformer.data.sampling import (
    clip_window,
    segment_indices,
    temporal_indices,
    test_indices,
    train_indices,
)
from timesformer.data.synthetic import (
    PAIRS,
    SynthParams,
    make_synthetic,
    pair_of,
    render,
    sample_params,
)
from timesformer.data.transforms import test_views, train_transform, val_transform
from timesformer.data.video import VIDEO_EXTENSIONS, VideoInfo, VideoReader, probe
from timesformer.data.writer import available_encoders, write_video

__all__ = [
    "PAIRS",
    "VIDEO_EXTENSIONS",
    "ClipConfig",
    "DatasetError",
    "DecodeFailures",
    "PrepareSummary",
    "Prepared",
    "SynthParams",
    "VideoClipDataset",
    "VideoDecodeError",
    "VideoInfo",
    "VideoReader",
    "available_encoders",
    "clip_window",
    "collate_clips",
    "make_loader",
    "make_synthetic",
    "pair_of",
    "probe",
    "read_class_names",
    "read_hmdb51",
    "read_kinetics",
    "read_ssv2",
    "read_ucf101",
    "render",
    "sample_params",
    "segment_indices",
    "set_epoch",
    "temporal_indices",
    "test_indices",
    "test_views",
    "train_indices",
    "train_transform",
    "val_transform",
    "worker_init_fn",
    "write_prepared",
    "write_video",
]
