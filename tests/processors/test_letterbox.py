import numpy as np
import pytest

from processors.letterbox import PAD_VALUE, Letterbox, letterbox_bgr, preprocess_into


@pytest.mark.parametrize(
    "src_hw, dst_hw, scale, pad_xy, resized_wh",
    [
        ((272, 640), (416, 416), 0.65, (0, 119), (416, 177)),  # bikes.mp4: wide
        ((640, 272), (416, 416), 0.65, (119, 0), (177, 416)),  # tall
        ((416, 416), (416, 416), 1.0, (0, 0), (416, 416)),  # exact
        ((1080, 1920), (640, 640), 1 / 3, (0, 140), (640, 360)),  # 1080p
        ((144, 176), (416, 416), 416 / 176, (0, 38), (416, 340)),  # carphone: upscale
    ],
)
def test_fit_geometry(src_hw, dst_hw, scale, pad_xy, resized_wh):
    box = Letterbox.fit(src_hw, dst_hw)
    assert box.scale == pytest.approx(scale)
    assert (box.pad_x, box.pad_y) == pad_xy
    assert box.resized_wh == resized_wh


def test_fit_rejects_empty_source():
    with pytest.raises(ValueError, match="positive"):
        Letterbox.fit((0, 10), (416, 416))


def test_boxes_round_trip_to_source_pixels():
    box = Letterbox.fit((272, 640), (416, 416))
    source = np.array([[10, 20, 300, 250], [0, 0, 640, 272]], np.float32)
    model = source * box.scale + np.array([box.pad_x, box.pad_y, box.pad_x, box.pad_y])
    np.testing.assert_allclose(box.to_source(model, (272, 640)), source, atol=1e-3)


def test_boxes_in_padding_are_clipped_to_the_frame():
    box = Letterbox.fit((272, 640), (416, 416))
    out = box.to_source(np.array([[-5, 0, 420, 416]], np.float32), (272, 640))
    assert out.tolist() == [[0, 0, 640, 272]]


def test_preprocess_writes_rgb_unit_range_with_grey_padding():
    image = np.zeros((100, 200, 3), np.uint8)
    image[..., 0] = 255  # pure blue in BGR
    dst = np.full((3, 64, 64), -1, np.float32)
    box = preprocess_into(dst, image)
    top, height = box.pad_y, box.resized_wh[1]
    inside = dst[:, top + 1 : top + height - 1, 1:-1]
    assert inside[2].min() == pytest.approx(1.0)  # blue lands in the third (B of RGB) plane
    assert inside[0].max() == pytest.approx(0.0)
    assert dst[:, 0, 0] == pytest.approx([PAD_VALUE / 255] * 3)
    assert dst.min() >= 0


def test_letterbox_output_has_model_size():
    canvas, _ = letterbox_bgr(np.zeros((272, 640, 3), np.uint8), (416, 416))
    assert canvas.shape == (416, 416, 3)
