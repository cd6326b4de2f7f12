"""Labels: a file whose line count does not match the model is refused before the pipeline."""

from types import SimpleNamespace

import numpy as np
import pytest

from engines.base import TensorSpec
from processors.errors import ProcessorError
from processors.labels import COCO80, load_labels
from streams.errors import ConfigError
from streams.runtime.wiring import check_labels


def engine_with_output(shape):
    return SimpleNamespace(output_specs=(TensorSpec("output0", shape, np.dtype(np.float32)),))


def config(labels, head="auto"):
    return SimpleNamespace(model=SimpleNamespace(labels=labels, head=head))


def test_coco_builtin():
    assert load_labels("coco") == COCO80 and len(COCO80) == 80


def test_file_lines_and_blank_lines(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("cat\n\n dog \n", encoding="utf-8")
    assert load_labels(str(path)) == ("cat", "dog")


def test_non_utf8_labels_file(tmp_path):
    path = tmp_path / "l.txt"
    path.write_bytes("cat\ndog\n".encode("utf-16"))
    with pytest.raises(ProcessorError, match=r"^model\.labels: .*not a UTF-8 text file"):
        load_labels(str(path))


@pytest.mark.parametrize("shape", [(-1, 84, 8400), (-1, 25200, 85)])
def test_labels_count_mismatch_is_a_config_error(tmp_path, shape):
    path = tmp_path / "l.txt"
    path.write_text("cat\ndog\nbird\n", encoding="utf-8")
    labels = load_labels(str(path))
    with pytest.raises(ConfigError, match=r"^model\.labels: .*3 labels.*the model has 80 classes"):
        check_labels(config(str(path)), engine_with_output(shape), labels)


@pytest.mark.parametrize(
    "shape, head", [((-1, 84, 8400), "auto"), ((-1, 25200, 85), "yolov5"), ((-1, 7), "auto")]
)
def test_matching_or_unknown_shapes_pass(shape, head):
    check_labels(config("coco", head), engine_with_output(shape), COCO80)


def test_coco_against_a_two_class_model():
    with pytest.raises(ConfigError, match=r"^model\.labels: 'coco' has 80 labels.*2 classes"):
        check_labels(config("coco"), engine_with_output((-1, 6, 8400)), COCO80)
