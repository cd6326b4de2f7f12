"""The view's pictures on the GPU path (GPU host only): TensorRT, NVDEC, two worker processes
behind the relay; the picture is the model input copied from the slot's device buffer for
watched frames only, and its boxes sit where that frame's det message puts them."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from tests.helpers import cleanup, free_port, start_cli, write_config
from tests.support.pictures import box_outlines, pictures_with_detections
from tests.test_gpu_pipeline import tensorrt_ready, trt_engine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(tensorrt_ready() is not None, reason=str(tensorrt_ready())),
]


def test_gpu_pictures_come_only_when_watched_and_show_the_boxes(assets, tmp_path):
    port = free_port()
    config = write_config(
        tmp_path / "gpu.yaml",
        [
            {"id": "bikes", "url": str(assets.videos["bikes.mp4"]), "loop": True},
            {"id": "carphone", "url": str(assets.videos["carphone_pristine.mp4"]), "loop": True},
        ],
        port,
        engine=trt_engine(tmp_path),
        workers={"processes": 2},
    )
    endpoint = f"tcp://127.0.0.1:{port}"
    process = start_cli("run", str(config), "--no-live")
    context = zmq.Context()
    try:
        everything = context.socket(zmq.SUB)  # sees det, never a preview nobody asked for
        everything.connect(endpoint)
        everything.subscribe(b"")
        kinds: set[bytes] = set()
        deadline = time.monotonic() + 180  # engine build on a fresh cache
        while time.monotonic() < deadline and b"det" not in kinds:
            if everything.poll(200):
                kinds.add(everything.recv_multipart()[0].split(b"/")[0])
        assert b"det" in kinds, process.output()[-3000:]
        end = time.monotonic() + 3
        while time.monotonic() < end:
            if everything.poll(100):
                kinds.add(everything.recv_multipart()[0].split(b"/")[0])
        assert b"preview" not in kinds
        pictures, dets = pictures_with_detections(endpoint, ["bikes", "carphone"], 6, 30)
        assert {h["stream"] for h, _ in pictures} == {"bikes", "carphone"}, process.output()[-3000:]
        for header, image in pictures:
            # The model input (416x416 letterboxed), cropped to the frame: at most 416 wide.
            assert image.shape[1] == header["picture_width"] <= 416
            ratio = header["picture_width"] / header["picture_height"]
            assert abs(ratio - header["width"] / header["height"]) < 0.05
        drawn, inside = box_outlines(pictures, dets)
        assert np.median(drawn) > 0.6, drawn
        assert np.median(inside) < 0.15, inside
    finally:
        context.destroy(linger=0)
        cleanup(process)
