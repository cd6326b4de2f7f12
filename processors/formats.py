"""Names of the detection heads the YOLO decoder reads, without importing OpenCV.

Why a module of its own: loading a config checks ``model.head`` against these, and must not
pay for (or require) cv2.
"""

HEAD_FORMATS = ("auto", "yolov5", "yolov8")
