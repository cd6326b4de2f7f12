"""``doctor``'s GPU rows (engines/doctor.py): every GPU listed, and how many engine builds
the GPUs need (one per model). Pure: the rows from what CUDA would report."""

from engines.doctor import ERROR, MISSING, OK, gpu_rows, report


def test_one_gpu_is_one_row_as_before():
    names = ["cuda:0 NVIDIA H200 (sm_90, 140 GiB)"]
    assert gpu_rows(OK, names[0], names) == [("GPU", OK, names[0])]
    assert gpu_rows(MISSING, "no CUDA GPU visible", []) == [("GPU", MISSING, "no CUDA GPU visible")]


def test_several_gpus_get_a_row_each_and_a_summary_of_the_builds():
    names = [
        "cuda:0 NVIDIA H200 (sm_90, 140 GiB)",
        "cuda:1 NVIDIA H200 (sm_90, 140 GiB)",
        "cuda:2 NVIDIA A100-SXM4-80GB (sm_80, 79 GiB)",
        "cuda:3 unreadable (cudaErrorUnknown)",
    ]
    rows = gpu_rows(OK, "; ".join(names), names)
    assert rows[0] == (
        "GPU",
        OK,
        "4 GPUs (engine.device: all takes every one): 2 x NVIDIA H200 (sm_90), "
        "1 x NVIDIA A100-SXM4-80GB (sm_80); 2 TensorRT engine builds (one per GPU model)",
    )
    assert rows[1:] == [
        ("GPU 0", OK, "NVIDIA H200 (sm_90, 140 GiB)"),
        ("GPU 1", OK, "NVIDIA H200 (sm_90, 140 GiB)"),
        ("GPU 2", OK, "NVIDIA A100-SXM4-80GB (sm_80, 79 GiB)"),
        ("GPU 3", ERROR, "unreadable (cudaErrorUnknown)"),
    ]


def test_the_report_starts_with_the_gpu_rows_on_this_host():
    rows = report()
    assert rows[0][0] == "GPU"
    assert all(status in (OK, MISSING, ERROR) for _, status, _ in rows)
