"""Class labels: COCO-80 built in, or one name per line from a file."""

from __future__ import annotations

from pathlib import Path

from processors.errors import ProcessorError

COCO80 = (
    "person",
    "bicycle",
    "car",
    "motorbike",
    "aeroplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "sofa",
    "pottedplant",
    "bed",
    "diningtable",
    "toilet",
    "tvmonitor",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)


def load_labels(spec: str) -> tuple[str, ...]:
    """``coco`` for the built-in COCO-80 names, else a text file with one label per line."""
    if spec == "coco":
        return COCO80
    try:
        lines = Path(spec).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ProcessorError(
            f"model.labels: {spec} is not a UTF-8 text file (byte {err.start} cannot be "
            "decoded); expected one label per line"
        ) from err
    except OSError as err:
        raise ProcessorError(f"model.labels: cannot read {spec} ({err.strerror})") from err
    return tuple(line.strip() for line in lines if line.strip())
