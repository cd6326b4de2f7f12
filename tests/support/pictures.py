"""Checks on the view's pictures shared by the CPU and GPU tests."""

from __future__ import annotations

import numpy as np


def outline_share(image: np.ndarray, box: list[float], colour) -> float:
    """The share of a box's outline (inside the picture) within 2 px of ``colour``."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (round(v) for v in box)
    x0, x1 = max(2, min(x0, width - 3)), max(2, min(x1, width - 3))
    y0, y1 = max(2, min(y0, height - 3)), max(2, min(y1, height - 3))
    near = np.abs(image.astype(int) - np.array(colour)).sum(axis=-1) < 120
    hits = [near[y - 2 : y + 3, x0:x1].any(axis=0) for y in (y0, y1)]
    hits += [near[y0:y1, x - 2 : x + 3].any(axis=1) for x in (x0, x1)]
    hits = np.concatenate(hits)
    return float(hits.mean()) if hits.size else 0.0


def pictures_with_detections(
    endpoint: str, streams: list[str], count: int, timeout_s: float
) -> tuple[list[tuple[dict, np.ndarray]], dict[tuple[str, int], dict]]:
    """Subscribe to ``det/`` and ``preview/`` of ``streams``; up to ``count`` pictures of frames
    with a detection scored above 0.3, and the det messages by (stream, seq)."""
    import time

    import cv2
    import zmq

    from streams.bus.messages import decode, decode_preview

    context = zmq.Context()
    dets: dict[tuple[str, int], dict] = {}
    pictures: list[tuple[dict, np.ndarray]] = []
    try:
        sub = context.socket(zmq.SUB)
        sub.connect(endpoint)
        for stream in streams:
            sub.subscribe(f"det/{stream}/".encode())
            sub.subscribe(f"preview/{stream}/".encode())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(pictures) < count:
            if not sub.poll(100):
                continue
            topic, payload = sub.recv_multipart()
            if topic.startswith(b"det/"):
                message = decode(payload)
                dets[message["stream"], message["seq"]] = message
                continue
            header, jpeg = decode_preview(payload)
            det = dets.get((header["stream"], header["seq"]))
            if det and any(d["score"] > 0.3 for d in det["detections"]):
                image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                pictures.append((header, image))
    finally:
        context.destroy(linger=0)
    return pictures, dets


def box_outlines(
    pictures: list[tuple[dict, np.ndarray]], dets: dict[tuple[str, int], dict]
) -> tuple[list[float], list[float]]:
    """For each detection (score > 0.3) of each picture's frame: the share of its outline drawn
    in its class colour, and the same for a rectangle 20 % inside it (a control)."""
    from processors.annotate import PALETTE

    drawn, inside = [], []
    for header, image in pictures:
        scale = header["picture_width"] / header["width"]
        for d in dets[header["stream"], header["seq"]]["detections"]:
            if d["score"] <= 0.3:
                continue
            x0, y0, x1, y1 = (v * scale for v in d["box"])
            colour = PALETTE[d["class_id"] % len(PALETTE)]
            drawn.append(outline_share(image, [x0, y0, x1, y1], colour))
            dx, dy = (x1 - x0) * 0.2, (y1 - y0) * 0.2
            inside.append(outline_share(image, [x0 + dx, y0 + dy, x1 - dx, y1 - dy], colour))
    return drawn, inside
